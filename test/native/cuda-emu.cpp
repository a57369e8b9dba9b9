// The CUDA kernels' bodies (native/**/*_cuda_kernels.cuh) run on the CPU under cuda-emu.h and
// checked against ATen computations of the contracts their host code promises (the same contracts
// the CPU paths of sign_conv2d.cpp / prelu.cpp / binary_weight.cpp implement). Every launch runs
// under three schedules (forward, reverse, shuffled), with the grids the host code computes and
// with smaller grids that make each thread walk many rows (the grid-stride loops).
//
//   test/native/run-cuda-emu.sh      (builds this against LibTorch's CPU headers and runs it)
// Exit status 0 and "cuda-emu: N checks passed" when everything agrees; otherwise the first
// failures, each naming the kernel, dtypes, shape, grid and schedule.
#include <ATen/ATen.h>

#include <cstdio>
#include <sstream>

// clang-format off: the emulation (whose macros must not reach ATen's headers) before the kernels.
#include "cuda-emu.h"
#include "binarize/binary_activation_cuda_kernels.cuh"
#include "binarize/binary_weight_cuda_kernels.cuh"
#include "nn/fused_cuda_kernels.cuh"
#include "nn/sign_conv2d_cuda_kernels.cuh"
// clang-format on

namespace {

using cuda_emu::Schedule;
constexpr Schedule kSchedules[] = {Schedule::Forward, Schedule::Reverse, Schedule::Shuffled};

int checks = 0, failures = 0;

void fail(const std::string& what) {
  ++failures;
  if (failures <= 20) std::fprintf(stderr, "FAIL %s\n", what.c_str());
}

// Bit-for-bit the same floats (signed zeros told apart), NaN matching any NaN.
void expect_same(const at::Tensor& got, const at::Tensor& want, const std::string& what) {
  ++checks;
  const at::Tensor g = got.to(at::kFloat).reshape(-1), w = want.to(at::kFloat).reshape(-1);
  if (g.sizes() != w.sizes()) return fail(what + ": shape differs");
  const at::Tensor ok = (g.eq(w) & g.signbit().eq(w.signbit())) | (g.isnan() & w.isnan());
  if (!ok.all().item<bool>()) {
    const int64_t i = (~ok).nonzero()[0][0].item<int64_t>();
    std::ostringstream s;
    s << what << ": " << (~ok).sum().item<int64_t>() << " of " << g.numel() << " differ; first at " << i << ": got " << g[i].item<float>()
      << ", want " << w[i].item<float>();
    fail(s.str());
  }
}

void expect_bytes(const at::Tensor& got, const at::Tensor& want, const std::string& what) {
  ++checks;
  const at::Tensor ok = got.reshape(-1).eq(want.reshape(-1).to(got.scalar_type()));
  if (!ok.all().item<bool>()) {
    const int64_t i = (~ok).nonzero()[0][0].item<int64_t>();
    std::ostringstream s;
    s << what << ": " << (~ok).sum().item<int64_t>() << " bytes differ; first at " << i << ": got " << got.reshape(-1)[i].item<int>()
      << ", want " << want.reshape(-1)[i].item<int>();
    fail(s.str());
  }
}

// A float32 sum against its float64 reference: within float32 accumulation error where the
// reference is finite, the same NaN or the same signed infinity where it is not.
void expect_sum(const at::Tensor& got, const at::Tensor& want, const at::Tensor& abs_terms, const std::string& what) {
  ++checks;
  const at::Tensor err = (got.to(at::kDouble) - want).abs();
  const at::Tensor bound = abs_terms * 1e-5 + 1e-6;
  const at::Tensor bad = (want.isfinite() & err.gt(bound)) | (got.isnan() != want.isnan()) | (got.isposinf() != want.isposinf()) |
                         (got.isneginf() != want.isneginf());
  if (bad.any().item<bool>()) {
    const int64_t i = bad.nonzero()[0][0].item<int64_t>();
    std::ostringstream s;
    s << what << ": channel " << i << ": got " << got[i].item<double>() << ", want " << want[i].item<double>() << " (bound "
      << bound[i].item<double>() << ")";
    fail(s.str());
  }
}

template <typename T>
T* ptr(const at::Tensor& t) {
  return static_cast<T*>(t.data_ptr());
}

// Inputs that reach every branch: the straight-through window's edges (+-1 exactly, just inside
// and outside), signed zeros, and (unless `finite`, which sums need to mean anything) infinities
// and NaN, among normal values. Where they fall depends on the seed, so two tensors of a test meet
// in every combination (an infinite gradient inside the window, inf + -inf, +0 + -0).
at::Tensor values(at::IntArrayRef shape, at::ScalarType dtype, uint64_t seed, bool finite = false) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  at::Tensor x = at::randn(shape, gen, at::TensorOptions().dtype(at::kFloat)) * 1.5;
  // 1 -+ 2^-8 and 1 + 2^-7 are the floats next to 1 in bfloat16 (0.999 and 1.001 round to 1 there).
  const float special[] = {1.f,         -1.f,         0.f,          -0.f,          0.999f,   -0.999f,   1.001f,   -1.001f,
                           0.99609375f, -0.99609375f, 1.0078125f,  -1.0078125f,   INFINITY, -INFINITY, NAN};
  const int64_t kinds = finite ? 12 : static_cast<int64_t>(std::size(special));
  const int64_t n = x.numel();
  float* flat = x.data_ptr<float>();
  // Strides 5 to 8 and shifted starts: the specials of tensors of neighbouring seeds coincide at
  // some elements, each time a different pair.
  const int64_t stride = 5 + static_cast<int64_t>(seed % 4);
  for (int64_t i = static_cast<int64_t>(seed % 3), k = static_cast<int64_t>(seed % 15); i < n; i += stride, ++k) flat[i] = special[k % kinds];
  return x.to(dtype);
}

const char* dtype_name(at::ScalarType t) { return t == at::kFloat ? "float32" : t == at::kHalf ? "float16" : "bfloat16"; }

template <typename F>
void for_dtype(at::ScalarType t, F&& f) {
  if (t == at::kFloat) return f(float{});
  if (t == at::kHalf) return f(c10::Half{});
  f(c10::BFloat16{});
}

constexpr at::ScalarType kDtypes[] = {at::kFloat, at::kHalf, at::kBFloat16};

// sign with NaN kept, as a float tensor; and the straight-through window |v| < 1.
at::Tensor sign_ref(const at::Tensor& v) { return at::where(v.isnan(), v, at::where(v.ge(0), 1.f, -1.f)); }
at::Tensor window(const at::Tensor& v) { return v.gt(-1) & v.lt(1); }

// ---- binary_activation_cuda: forward (sign, mask) and backward (masked gradient) ----------------
void test_binary_activation() {
  namespace k = bnn::activation_kernels;
  for (at::ScalarType dt : kDtypes) {
    for (int64_t n : {1, 255, 1000, 3001}) {
      const at::Tensor x = values({n}, dt, n), g = values({n}, dt, n + 1);
      const at::Tensor xf = x.to(at::kFloat);
      const at::Tensor want_out = sign_ref(xf), want_keep = window(xf);
      for (int blocks : {k::blocks_for(n), 2}) {
        for (Schedule s : kSchedules) {
          const std::string what =
              std::string("binary_activation ") + dtype_name(dt) + " n=" + std::to_string(n) + " blocks=" + std::to_string(blocks) + " " + cuda_emu::name(s);
          for_dtype(dt, [&](auto tag) {
            using T = decltype(tag);
            at::Tensor out = at::full({n}, 7.f, x.options()), keep = at::full({n}, 9, at::kByte), dx = at::full({n}, 7.f, x.options());
            cuda_emu::launch(s, dim3(blocks), dim3(k::kThreads), &k::forward_kernel<T>, ptr<const T>(x), ptr<T>(out), ptr<uint8_t>(keep), n);
            expect_same(out, want_out, what + " forward");
            expect_bytes(keep, want_keep, what + " mask");
            cuda_emu::launch(s, dim3(blocks), dim3(k::kThreads), &k::backward_kernel<T>, ptr<const T>(g), ptr<const uint8_t>(keep), ptr<T>(dx), n);
            expect_same(dx, at::where(want_keep, g.to(at::kFloat), 0.f), what + " backward");
          });
        }
      }
    }
  }
}

// ---- sign_conv2d_cuda: sign_code (signs in another dtype + code byte), signs from the code, masked grad
void test_sign_code() {
  namespace k = bnn::nn::cuda::sign_kernels;
  for (at::ScalarType in : kDtypes) {
    for (at::ScalarType out : kDtypes) {
      for (int64_t n : {1, 513, 2000}) {
        const at::Tensor x = values({n}, in, 3 * n), g = values({n}, out, 3 * n + 1);
        const at::Tensor xf = x.to(at::kFloat);
        const at::Tensor want_signs = sign_ref(xf);
        const at::Tensor want_code = window(xf).to(at::kByte) | xf.ge(0).to(at::kByte).mul(2);
        for (int blocks : {k::blocks_for(n), 3}) {
          for (Schedule s : kSchedules) {
            const std::string what = std::string("sign_code ") + dtype_name(in) + "->" + dtype_name(out) + " n=" + std::to_string(n) +
                                     " blocks=" + std::to_string(blocks) + " " + cuda_emu::name(s);
            for_dtype(in, [&](auto in_tag) {
              for_dtype(out, [&](auto out_tag) {
                using I = decltype(in_tag);
                using O = decltype(out_tag);
                at::Tensor signs = at::full({n}, 7.f, at::TensorOptions().dtype(out)), code = at::full({n}, 9, at::kByte);
                cuda_emu::launch(s, dim3(blocks), dim3(k::kThreads), &k::sign_code_kernel<I, O>, ptr<const I>(x), ptr<O>(signs),
                                 ptr<uint8_t>(code), n);
                expect_same(signs, want_signs, what + " signs");
                expect_bytes(code, want_code, what + " code");
                if (in != at::kFloat) return;  // the two below depend on the output dtype only
                at::Tensor rebuilt = at::full({n}, 7.f, at::TensorOptions().dtype(out)), dx = at::full({n}, 7.f, g.options());
                cuda_emu::launch(s, dim3(blocks), dim3(k::kThreads), &k::signs_kernel<O>, ptr<const uint8_t>(code), ptr<O>(rebuilt), n);
                expect_same(rebuilt, at::where(xf.ge(0), 1.f, -1.f), what + " signs from code");
                cuda_emu::launch(s, dim3(blocks), dim3(k::kThreads), &k::masked_grad_kernel<O>, ptr<const O>(g), ptr<const uint8_t>(code),
                                 ptr<O>(dx), n);
                expect_same(dx, at::where(window(xf), g.to(at::kFloat), 0.f), what + " masked grad");
              });
            });
          }
        }
      }
    }
  }
}

// The fused kernels see `rows` rows of C contiguous channels (a channels-last map): here a
// [rows, C] tensor. Their host code's grid, and a grid of two row blocks.
struct Geometry {
  int64_t rows, C;
};
constexpr Geometry kGeometries[] = {{1, 3}, {7, 40}, {300, 64}, {1100, 40}, {2000, 3}};

std::vector<dim3> grids_for(const Geometry& geo) {
  namespace k = bnn::nn::cuda::fused_kernels;
  const k::Launch l = k::launch_for(geo.rows, geo.C);
  std::vector<dim3> grids{l.grid};
  if (l.grid.y > 2) grids.emplace_back(l.grid.x, 2);
  return grids;
}

std::string geometry_name(const char* kernel, const Geometry& geo, dim3 grid, Schedule s) {
  return std::string(kernel) + " rows=" + std::to_string(geo.rows) + " C=" + std::to_string(geo.C) + " grid=(" + std::to_string(grid.x) +
         "," + std::to_string(grid.y) + ") " + cuda_emu::name(s);
}

at::Tensor channel_params(int64_t C, uint64_t seed, double lo, double hi) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  return at::rand({C}, gen, at::TensorOptions().dtype(at::kFloat)) * (hi - lo) + lo;
}

// ---- fused_cuda: PReLU with the residual add, forward and backward ------------------------------
void test_prelu() {
  namespace k = bnn::nn::cuda::fused_kernels;
  for (at::ScalarType dt : kDtypes) {
    for (const Geometry& geo : kGeometries) {
     for (bool finite : {false, true}) {
      const int64_t n = geo.rows * geo.C;
      const at::Tensor u = values({geo.rows, geo.C}, dt, n, finite), v = values({geo.rows, geo.C}, dt, n + 1, finite);
      const at::Tensor g = values({geo.rows, geo.C}, dt, n + 2, finite);
      const at::Tensor slopes = channel_params(geo.C, n, -0.5, 0.5);
      // aten::add then aten::prelu: the sum rounded to the dtype, then max(0, s) + a * min(0, s).
      const at::Tensor s_sum = (u.to(at::kFloat) + v.to(at::kFloat)).to(dt).to(at::kFloat);
      for (dim3 grid : grids_for(geo)) {
        for (Schedule s : kSchedules) {
          for (bool add : {true, false}) {
            const std::string what = geometry_name(add ? "prelu(u + v)" : "prelu(u)", geo, grid, s) + " " + dtype_name(dt) +
                                     (finite ? " finite" : " with inf/NaN");
            const at::Tensor sf = add ? s_sum : u.to(at::kFloat);
            for_dtype(dt, [&](auto tag) {
              using T = decltype(tag);
              at::Tensor y = at::full_like(u, 7.f), saved = at::full_like(u, 7.f);
              if (add) {
                cuda_emu::launch(s, grid, dim3(k::kCols, k::kRows), &k::prelu_forward_kernel<T, true>, ptr<const T>(u), ptr<const T>(v),
                                 ptr<const float>(slopes), ptr<T>(y), ptr<T>(saved), geo.rows, geo.C);
                expect_same(saved, s_sum, what + " saved sum");
              } else {
                cuda_emu::launch(s, grid, dim3(k::kCols, k::kRows), &k::prelu_forward_kernel<T, false>, ptr<const T>(u), nullptr,
                                 ptr<const float>(slopes), ptr<T>(y), nullptr, geo.rows, geo.C);
              }
              expect_same(y, at::where(sf.gt(0), sf, slopes * sf).to(dt), what + " forward");
              if (!add) return;
              // Backward from the saved pre-activation: dx = g where s > 0 else a * g; the slopes'
              // gradient sums g * s over the rows where s <= 0.
              at::Tensor dx = at::full_like(u, 7.f);
              at::Tensor partial = at::full({static_cast<int64_t>(grid.y) * geo.C}, 7.f);
              cuda_emu::launch(s, grid, dim3(k::kCols, k::kRows), &k::prelu_backward_kernel<T>, ptr<const T>(g), ptr<const T>(saved),
                               ptr<const float>(slopes), ptr<T>(dx), ptr<float>(partial), geo.rows, geo.C);
              const at::Tensor gf = g.to(at::kFloat);
              expect_same(dx, at::where(sf.gt(0), gf, slopes * gf).to(dt), what + " backward dx");
              const at::Tensor terms = at::where(sf.gt(0), 0.f, gf * sf).to(at::kDouble);
              expect_sum(partial.view({grid.y, geo.C}).sum(0), terms.sum(0), terms.abs().sum(0), what + " backward slopes");
            });
          }
        }
      }
     }
    }
  }
}

// ---- fused_cuda: training BatchNorm -> sign, forward and the two backward passes ----------------
void test_bn_sign() {
  namespace k = bnn::nn::cuda::fused_kernels;
  for (at::ScalarType in : kDtypes) {
    for (at::ScalarType out : kDtypes) {
      for (const Geometry& geo : kGeometries) {
       for (bool finite : {false, true}) {
        const int64_t n = geo.rows * geo.C;
        const at::Tensor x = values({geo.rows, geo.C}, in, 5 * n, finite);
        const at::Tensor g = values({geo.rows, geo.C}, out, 5 * n + 1, finite);
        const at::Tensor mean = channel_params(geo.C, n, -0.3, 0.3), scale = channel_params(geo.C, n + 1, -2, 2);
        const at::Tensor bias = channel_params(geo.C, n + 2, -0.5, 0.5), mean_dy = channel_params(geo.C, n + 3, -0.1, 0.1);
        const at::Tensor coef = channel_params(geo.C, n + 4, -0.2, 0.2);
        // Channel 0 the identity (v = x: the inputs' window edges reach the sign exactly), the last
        // of several a zero scale (v = bias, BatchNorm of a constant channel).
        mean[0] = 0.f, scale[0] = 1.f, bias[0] = 0.f;
        if (geo.C > 1) scale[geo.C - 1] = 0.f;
        const at::Tensor xf = x.to(at::kFloat);
        // Each operation rounded to float32, as the kernel (built without contraction) does.
        const at::Tensor v = (xf - mean) * scale + bias;
        const at::Tensor want_code = window(v).to(at::kByte) | v.ge(0).to(at::kByte).mul(2);
        const at::Tensor dy = at::where(window(v), g.to(at::kFloat), 0.f);
        for (dim3 grid : grids_for(geo)) {
          for (Schedule s : kSchedules) {
            const std::string what = geometry_name("bn_sign", geo, grid, s) + " " + dtype_name(in) + "->" + dtype_name(out) +
                                     (finite ? " finite" : " with inf/NaN");
            for_dtype(in, [&](auto in_tag) {
              for_dtype(out, [&](auto out_tag) {
                using I = decltype(in_tag);
                using O = decltype(out_tag);
                at::Tensor signs = at::full({geo.rows, geo.C}, 7.f, at::TensorOptions().dtype(out));
                at::Tensor code = at::full({geo.rows, geo.C}, 9, at::kByte);
                cuda_emu::launch(s, grid, dim3(k::kCols, k::kRows), &k::bn_sign_forward_kernel<I, O>, ptr<const I>(x), ptr<const float>(mean),
                                 ptr<const float>(scale), ptr<const float>(bias), ptr<O>(signs), ptr<uint8_t>(code), geo.rows, geo.C);
                expect_same(signs, sign_ref(v), what + " forward signs");
                expect_bytes(code, want_code, what + " forward code");

                at::Tensor partial = at::full({2, static_cast<int64_t>(grid.y) * geo.C}, 7.f);
                float* p = ptr<float>(partial);
                cuda_emu::launch(s, grid, dim3(k::kCols, k::kRows), &k::bn_sign_grad_sums_kernel<O, I>, ptr<const O>(g),
                                 ptr<const uint8_t>(code), ptr<const I>(x), ptr<const float>(mean), p, p + grid.y * geo.C, geo.rows, geo.C);
                const at::Tensor dyd = dy.to(at::kDouble), xmu = (xf - mean).to(at::kDouble);
                const at::Tensor sum_dy = partial[0].view({grid.y, geo.C}).sum(0), sum_dy_xmu = partial[1].view({grid.y, geo.C}).sum(0);
                // dy is a select: an inf or NaN gradient the mask cuts is exactly 0 (a kept one is not).
                expect_sum(sum_dy, dyd.sum(0), dyd.abs().sum(0), what + " sum dy");
                expect_sum(sum_dy_xmu, (dyd * xmu).sum(0), (dyd * xmu).abs().sum(0), what + " sum dy (x - mean)");

                at::Tensor dx = at::full_like(x, 7.f);
                cuda_emu::launch(s, grid, dim3(k::kCols, k::kRows), &k::bn_sign_grad_input_kernel<O, I>, ptr<const O>(g),
                                 ptr<const uint8_t>(code), ptr<const I>(x), ptr<const float>(mean), ptr<const float>(scale),
                                 ptr<const float>(mean_dy), ptr<const float>(coef), ptr<I>(dx), geo.rows, geo.C);
                expect_same(dx, ((dy - mean_dy - (xf - mean) * coef) * scale).to(in), what + " grad input");
              });
            });
          }
        }
       }
      }
    }
  }
}

// ---- binary_weight_cuda: per-output-channel scale, sign * scale, mask; the masked gradient ------
void test_binary_weight() {
  namespace k = bnn::cuda::weight_kernels;
  for (int64_t out : {1, 5, 16}) {
    for (int64_t row : {1, 9, 576, 1000}) {
      // Finite weights with the window's edges, but for the last row of several, which holds inf and
      // NaN: its scale is NaN, its signs keep the NaN, as on the CPU.
      const at::Tensor w = values({out, row}, at::kFloat, out * row, true);
      if (out > 1) w[out - 1].copy_(values({row}, at::kFloat, out * row + 2));
      const at::Tensor g = values({out, row}, at::kFloat, out * row + 1);
      const at::Tensor want_alpha = w.to(at::kDouble).abs().mean(1);
      for (Schedule s : kSchedules) {
        const std::string what = "binary_weight out=" + std::to_string(out) + " row=" + std::to_string(row) + " " + cuda_emu::name(s);
        at::Tensor wout = at::full_like(w, 7.f), keep = at::full({out, row}, 9, at::kByte), alpha = at::full({out}, 7.f);
        cuda_emu::launch(s, dim3(static_cast<unsigned>(out)), dim3(k::kThreads), &k::binarize_rows_kernel, ptr<const float>(w), ptr<float>(wout),
                         ptr<uint8_t>(keep), ptr<float>(alpha), row);
        expect_sum(alpha, want_alpha, w.to(at::kDouble).abs().sum(1) / row, what + " scale");
        const at::Tensor a = alpha.unsqueeze(1);
        expect_same(wout, at::where(w.isnan(), w, at::where(w.ge(0), a, -a)), what + " sign * scale");
        expect_bytes(keep, w.ge(-1) & w.le(1), what + " mask");
        at::Tensor dw = at::full_like(w, 7.f);
        cuda_emu::launch(s, dim3(static_cast<unsigned>(out)), dim3(k::kThreads), &k::grad_rows_kernel, ptr<const float>(g), ptr<const uint8_t>(keep),
                         ptr<const float>(alpha), ptr<float>(dw), row);
        expect_same(dw, at::where(keep.ne(0), g * a, 0.f), what + " gradient");
      }
    }
  }
}

// The host code's grids for shapes too large to run here still pass CUDA's launch limits.
void test_large_grids() {
  namespace f = bnn::nn::cuda::fused_kernels;
  for (int64_t rows : {int64_t{1} << 20, int64_t{1} << 28, int64_t{3} << 30}) {
    for (int64_t C : {1, 64, 2048}) {
      ++checks;
      const f::Launch l = f::launch_for(rows, C);
      try {
        cuda_emu::check_config(l.grid, l.block);
        if (static_cast<int64_t>(l.grid.y) != l.row_blocks) fail("launch_for: row_blocks disagrees with the grid");
      } catch (const std::exception& e) {
        fail(std::string("launch_for(") + std::to_string(rows) + ", " + std::to_string(C) + "): " + e.what());
      }
    }
  }
  for (int64_t n : {int64_t{1} << 20, int64_t{1} << 33, int64_t{1} << 40}) {
    ++checks;
    try {
      cuda_emu::check_config(dim3(bnn::activation_kernels::blocks_for(n)), dim3(bnn::activation_kernels::kThreads));
      cuda_emu::check_config(dim3(bnn::nn::cuda::sign_kernels::blocks_for(n)), dim3(bnn::nn::cuda::sign_kernels::kThreads));
    } catch (const std::exception& e) {
      fail(std::string("blocks_for(") + std::to_string(n) + "): " + e.what());
    }
  }
}

// ---- the emulator's own checks: each would let a broken kernel through if it did not work -------
__global__ void early_exit_kernel(int* out) {
  if (threadIdx.x == 3) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

// Thread i reads thread i+1's shared write with no barrier between: a race.
__global__ void racy_kernel(int* out) {
  __shared__ int cell[64];
  cell[threadIdx.x] = static_cast<int>(threadIdx.x) + 1;
  out[threadIdx.x] = cell[(threadIdx.x + 1) % 64];
}

// Writes its shared cell when `write`, reads it back either way: a block that does not write it
// must see garbage (0xFF bytes), not the previous block's value.
__global__ void fresh_shared_kernel(int* out, bool write) {
  BNN_SHARED(int, cell, [4]);
  if (write) cell[threadIdx.x] = 7;
  __syncthreads();
  out[blockIdx.x * 4 + threadIdx.x] = cell[threadIdx.x];
}

__global__ void counting_kernel(int* out) { out[(blockIdx.y * gridDim.x + blockIdx.x) * blockDim.x + threadIdx.x] += 1; }

void test_emulator() {
  std::vector<int> out(64, 0);
  ++checks;
  try {
    cuda_emu::launch(Schedule::Forward, dim3(1), dim3(8), &early_exit_kernel, out.data());
    fail("a __syncthreads() after some threads returned was not reported");
  } catch (const std::runtime_error& e) {
    if (std::string(e.what()).find("have left the kernel") == std::string::npos) fail(std::string("early exit: ") + e.what());
  }
  ++checks;
  try {
    cuda_emu::launch(Schedule::Forward, dim3(1), dim3(2048), &counting_kernel, out.data());
    fail("a block of 2048 threads was launched");
  } catch (const std::runtime_error&) {
  }
  ++checks;
  try {
    cuda_emu::check_config(dim3(1, 65536), dim3(32));
    fail("a grid of 65536 rows of blocks passed");
  } catch (const std::runtime_error&) {
  }
  // The race shows: the schedules see different sets of their neighbours' writes.
  std::vector<int> forward(64), reverse(64);
  cuda_emu::launch(Schedule::Forward, dim3(1), dim3(64), &racy_kernel, forward.data());
  cuda_emu::launch(Schedule::Reverse, dim3(1), dim3(64), &racy_kernel, reverse.data());
  ++checks;
  if (forward == reverse) fail("a read of a neighbour's shared write without a barrier gave the same result under every schedule");
  std::vector<int> cells(8, 0);
  cuda_emu::launch(Schedule::Forward, dim3(2), dim3(4), &fresh_shared_kernel, cells.data(), true);
  ++checks;
  if (std::any_of(cells.begin(), cells.end(), [](int c) { return c != 7; })) fail("a block did not read back its own shared writes");
  cuda_emu::launch(Schedule::Forward, dim3(2), dim3(4), &fresh_shared_kernel, cells.data(), false);
  ++checks;
  if (std::any_of(cells.begin(), cells.end(), [](int c) { return c != -1; })) fail("a block read shared memory another block or launch had written");
  // Every thread of every block runs exactly once a launch.
  std::vector<int> counts(3 * 2 * 40, 0);
  for (Schedule s : kSchedules) cuda_emu::launch(s, dim3(3, 2), dim3(40), &counting_kernel, counts.data());
  ++checks;
  if (std::any_of(counts.begin(), counts.end(), [](int c) { return c != 3; })) fail("a thread ran other than once a launch");
}

}  // namespace

int main(int argc, char** argv) {
  const std::string only = argc > 1 ? argv[1] : "";
  const std::pair<const char*, void (*)()> suites[] = {{"emulator", test_emulator},
                                                       {"binary_activation", test_binary_activation},
                                                       {"sign_code", test_sign_code},
                                                       {"prelu", test_prelu},
                                                       {"bn_sign", test_bn_sign},
                                                       {"binary_weight", test_binary_weight},
                                                       {"large_grids", test_large_grids}};
  for (const auto& [name, run] : suites) {
    if (!only.empty() && only != name) continue;
    const int before = checks;
    try {
      run();
    } catch (const std::exception& e) {
      fail(std::string(name) + ": " + e.what());
    }
    std::printf("cuda-emu: %-17s %5d checks\n", name, checks - before);
  }
  if (failures) {
    std::fprintf(stderr, "cuda-emu: %d of %d checks FAILED\n", failures, checks);
    return 1;
  }
  std::printf("cuda-emu: %d checks passed\n", checks);
  return 0;
}
