// Mutation fuzzing of packed-model loading and prediction, meant to run under AddressSanitizer +
// UBSan (run-fuzz.sh).
//
//   fuzz_packed CASES [SEED_FILE...]
//
// Seeds: packed files exported here from random float models (both stems, double-skip and
// classic blocks, channel counts that are not multiples of 64) plus any packed files given. Each
// case mutates one seed deterministically: bit flips, random bytes, truncation, the 8-byte header
// length, and edits inside the JSON header (numbers in data_offsets and shapes changed, dtypes
// swapped, keys renamed, metadata values such as the format version and config changed). Each
// mutant is parsed, loaded and, when it loads, run on a small batch. Every call must succeed or
// throw bnn::Error; anything else (another exception, a sanitizer report, a crash) fails the run.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "core/errors.h"
#include "infer/model.h"
#include "infer/safetensors.h"

using namespace bnn::infer;
using Bytes = std::vector<uint8_t>;

namespace {

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "FUZZ FAILURE: %s\n", what.c_str());
  std::exit(1);
}

Bytes read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) die("cannot read seed " + path);
  return Bytes(std::istreambuf_iterator<char>(f), {});
}

std::string tmp(const std::string& name) {
  const char* dir = std::getenv("TMPDIR");
  return std::string(dir && *dir ? dir : "/tmp") + "/bnn-infer-fuzz-" + std::to_string(::getpid()) + "-" + name;
}

// A random float model as training writes it, exported to packed bytes.
Bytes make_seed(const Config& cfg, std::mt19937_64& rng) {
  std::normal_distribution<float> normal;
  std::vector<TensorData> ts;
  auto add = [&](const std::string& name, std::vector<int64_t> shape) {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = normal(rng);
    if (name.find("running_var") != std::string::npos) for (auto& x : v) x = std::fabs(x) + 0.1f;
    ts.push_back(make_f32(name, shape, v));
  };
  auto bn = [&](const std::string& p, int64_t n) {
    for (const char* s : {".weight", ".bias", ".running_mean", ".running_var"}) add(p + s, {n});
  };
  const int64_t k = cfg.stem == "imagenet" ? 7 : 3;
  add("conv1.weight", {cfg.width, cfg.in_channels, k, k});
  bn("bn1", cfg.width);
  for (const BlockSpec& b : block_specs(cfg)) {
    const std::vector<std::string> suffixes = cfg.double_skip ? std::vector<std::string>{""} : std::vector<std::string>{"1", "2"};
    for (const auto& sfx : suffixes) {
      const int64_t in = sfx == "2" ? b.out : b.in;
      bn(b.prefix + ".bn" + sfx, in);
      add(b.prefix + ".conv" + sfx + ".weight", {b.out, in, 3, 3});
      add(b.prefix + ".prelu" + sfx + ".weight", {b.out});
    }
    if (b.downsample) {
      add(b.prefix + ".downsample.0.weight", {b.out, b.in, 1, 1});
      bn(b.prefix + ".downsample.1", b.out);
    }
  }
  add("fc.weight", {cfg.num_classes, 8 * cfg.width});
  add("fc.bias", {cfg.num_classes});
  const std::string f = tmp("seed-float"), p = tmp("seed-packed");
  write_safetensors(f, ts, {{"bnn_torch.config", cfg.to_json()}});
  ExportOptions o;
  o.metadata["classNames"] = "[\"x\"]";
  export_packed(f, p, o);
  Bytes bytes = read_all(p);
  std::remove(f.c_str());
  std::remove(p.c_str());
  return bytes;
}

struct Counts {
  long loaded = 0, rejected = 0, predicted = 0;
};

void try_case(const Bytes& bytes, long id, Counts& counts) {
  try {
    auto m = Model::load_bytes(bytes, "case " + std::to_string(id));
    ++counts.loaded;
    const auto& cfg = m->config();
    // A small odd image (the im2col path) on the best kernels, and every 16th case a wider one
    // (the direct path, outputs >= 16 columns) on every instruction set this CPU has.
    const bool wide = id % 16 == 0;
    const int64_t n = 2, c = cfg.in_channels, h = wide ? 33 : 9, w = wide ? 35 : 7;
    std::vector<float> x(static_cast<size_t>(n * c * h * w), 0.5f), y(static_cast<size_t>(n * cfg.num_classes));
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(static_cast<int>(i % 13) - 6) / 3.f;
    if (wide) {
      for (Isa isa : supported_isas()) m->predict(x.data(), n, c, h, w, y.data(), 2, isa);
    } else {
      m->predict(x.data(), n, c, h, w, y.data(), 2);
    }
    ++counts.predicted;
  } catch (const bnn::Error&) {
    ++counts.rejected;
  } catch (const std::exception& e) {
    die("case " + std::to_string(id) + " threw a non-bnn exception: " + e.what());
  } catch (...) {
    die("case " + std::to_string(id) + " threw a non-exception");
  }
}

// Positions of ASCII digits runs and of quoted strings inside the JSON header.
Bytes mutate(const Bytes& seed, std::mt19937_64& rng) {
  Bytes b = seed;
  auto pick = [&](uint64_t n) { return n ? rng() % n : 0; };
  uint64_t hlen = 0;
  for (int i = 7; i >= 0 && b.size() >= 8; --i) hlen = (hlen << 8) | b[static_cast<size_t>(i)];
  const size_t hend = b.size() >= 8 ? static_cast<size_t>(std::min<uint64_t>(b.size(), 8 + hlen)) : b.size();
  const int kind = static_cast<int>(pick(10));
  switch (kind) {
    case 0:  // bit flips anywhere
      for (int i = 0, n = 1 + static_cast<int>(pick(8)); i < n && !b.empty(); ++i) b[pick(b.size())] ^= static_cast<uint8_t>(1u << pick(8));
      break;
    case 1:  // truncation
      b.resize(pick(b.size() + 1));
      break;
    case 2: {  // header length field
      const uint64_t choices[] = {0, 1, 7, hlen - 1, hlen + 1, hlen + 8, b.size(), b.size() - 8, ~uint64_t{0}, uint64_t{1} << 40, pick(1 << 20)};
      const uint64_t v = choices[pick(11)];
      for (int i = 0; i < 8 && static_cast<size_t>(i) < b.size(); ++i) b[static_cast<size_t>(i)] = static_cast<uint8_t>(v >> (8 * i));
      break;
    }
    case 3: case 4: case 5: {  // a number in the header: data_offsets, shapes, version, config values
      std::vector<std::pair<size_t, size_t>> runs;
      for (size_t i = 8; i < hend;) {
        if (b[i] >= '0' && b[i] <= '9') {
          size_t j = i;
          while (j < hend && b[j] >= '0' && b[j] <= '9') ++j;
          runs.emplace_back(i, j);
          i = j;
        } else {
          ++i;
        }
      }
      if (runs.empty()) break;
      const auto [s, e] = runs[pick(runs.size())];
      const long long old = std::atoll(std::string(b.begin() + static_cast<long>(s), b.begin() + static_cast<long>(e)).c_str());
      const long long choices[] = {0, 1, old + 1, old - 1, old * 2, old + 8, 255, 65536, 4294967296LL, 9223372036854775807LL, old + 64};
      std::string rep = std::to_string(choices[pick(11)]);
      if (pick(8) == 0) rep = "-" + rep;
      if (pick(10) == 0) rep += ".5";
      Bytes out(b.begin(), b.begin() + static_cast<long>(s));
      out.insert(out.end(), rep.begin(), rep.end());
      out.insert(out.end(), b.begin() + static_cast<long>(e), b.end());
      // Keep the header length consistent most of the time, so the edit reaches the checks past it.
      if (pick(4) != 0 && out.size() >= 8) {
        const uint64_t nh = hlen + rep.size() - (e - s);
        for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<uint8_t>(nh >> (8 * i));
      }
      b = std::move(out);
      break;
    }
    case 6: {  // dtype / key / value words swapped inside the header (same length keeps offsets)
      const char* from[] = {"F32", "U8\"", "I64", "bits", "alpha", "mode", "true", "small", "\"1\"", "conv1", "fc.b"};
      const char* to[] = {"F16", "I8\"", "F64", "bitz", "alphx", "modf", "fals", "smalx", "\"2\"", "conv2", "fc.w"};
      const int k = static_cast<int>(pick(11));
      const std::string f = from[k];
      std::string header(b.begin() + 8 < b.begin() + static_cast<long>(hend) ? b.begin() + 8 : b.begin(), b.begin() + static_cast<long>(hend));
      size_t pos = header.find(f);
      for (uint64_t skip = pick(6); pos != std::string::npos && skip; --skip) pos = header.find(f, pos + 1);
      if (pos == std::string::npos || b.size() < 8) break;
      std::memcpy(b.data() + 8 + pos, to[k], f.size());
      break;
    }
    case 7:  // random bytes inside the header
      for (int i = 0, n = 1 + static_cast<int>(pick(4)); i < n && hend > 8; ++i) b[8 + pick(hend - 8)] = static_cast<uint8_t>(rng());
      break;
    case 8:  // random bytes in the data (weights, thresholds, modes)
      for (int i = 0, n = 1 + static_cast<int>(pick(64)); i < n && b.size() > hend; ++i) b[hend + pick(b.size() - hend)] = static_cast<uint8_t>(rng());
      break;
    default: {  // a spliced duplicate run
      if (b.size() < 16) break;
      const size_t s = pick(b.size()), len = pick(std::min<size_t>(64, b.size() - s) + 1), at = pick(b.size());
      Bytes piece(b.begin() + static_cast<long>(s), b.begin() + static_cast<long>(s + len));
      b.insert(b.begin() + static_cast<long>(at), piece.begin(), piece.end());
    }
  }
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  const long cases = argc > 1 ? std::atol(argv[1]) : 2000;
  std::mt19937_64 rng(42);
  std::vector<Bytes> seeds;
  {
    Config a;
    a.width = 3, a.in_channels = 1, a.num_classes = 4;
    seeds.push_back(make_seed(a, rng));
    Config b;
    b.width = 5, b.in_channels = 3, b.num_classes = 3, b.stem = "imagenet", b.double_skip = false;
    seeds.push_back(make_seed(b, rng));
    Config c;
    c.width = 9, c.in_channels = 2, c.num_classes = 2;
    seeds.push_back(make_seed(c, rng));
  }
  for (int i = 2; i < argc; ++i) seeds.push_back(read_all(argv[i]));
  Counts counts;
  for (size_t s = 0; s < seeds.size(); ++s) try_case(seeds[s], -1 - static_cast<long>(s), counts);
  if (counts.predicted != static_cast<long>(seeds.size())) die("an unmutated seed did not load and predict");
  counts = Counts{};  // mutants only from here
  for (long id = 0; id < cases; ++id) try_case(mutate(seeds[static_cast<size_t>(id) % seeds.size()], rng), id, counts);
  std::printf("infer fuzz: %ld cases on %zu seeds: %ld rejected with clear errors, %ld loaded and predicted, 0 crashes\n", cases,
              seeds.size(), counts.rejected, counts.predicted);
  return 0;
}
