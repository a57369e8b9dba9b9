// Mutation fuzzing of the image core, meant to run under AddressSanitizer + UBSan (run-fuzz.sh).
//
//   fuzz_image CASES [SEED_FILE...]
//
// The seed corpus is built here (TurboJPEG and libspng encoders: baseline, progressive, 4:2:0 /
// 4:2:2 / 4:4:4 / grey / CMYK JPEGs; RGB, RGBA, grey, 16-bit, grey+alpha, palette+tRNS and
// interlaced PNGs) plus any files given. Each case mutates one seed deterministically (bit flips,
// random bytes, truncation, JPEG marker and PNG chunk field pokes, chunk length / CRC damage,
// spliced and duplicated runs) and runs probe, whole / region / DCT-scaled decodes in both
// channel counts, the train and eval transforms and store preparation. Every call must either
// succeed with sane output or throw bnn::Error; anything else (another exception, a sanitizer
// report, a crash) fails the run. Damaged prepared stores get the same treatment.
#include <spng.h>
#include <turbojpeg.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "core/errors.h"
#include "data/random.h"
#include "image/decode.h"
#include "image/store.h"
#include "image/transforms.h"

using namespace bnn::image;
using Bytes = std::vector<uint8_t>;

namespace {

struct Counts {
  long ok = 0;
  long rejected = 0;
};

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "FUZZ FAILURE: %s\n", what.c_str());
  std::exit(1);
}

// Runs `body`; a bnn::Error is an accepted outcome, anything else ends the run.
template <class F>
void expect(const char* what, long case_id, Counts& counts, F&& body) {
  try {
    body();
    ++counts.ok;
  } catch (const bnn::Error&) {
    ++counts.rejected;
  } catch (const std::exception& e) {
    die(std::string(what) + " (case " + std::to_string(case_id) + ") threw a non-bnn exception: " + e.what());
  } catch (...) {
    die(std::string(what) + " (case " + std::to_string(case_id) + ") threw a non-exception");
  }
}

// ---- seed corpus ------------------------------------------------------------------------------

Bytes photo_like(int w, int h, int channels, uint64_t seed) {
  // Smooth gradients plus noise: compressible like a photograph, with texture to code.
  bnn::data::Rng rng(seed);
  Bytes p(static_cast<size_t>(w) * h * channels);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      for (int c = 0; c < channels; ++c) {
        const int v = (x * (c + 1) * 255 / std::max(1, w) + y * (3 - c % 3) * 255 / std::max(1, h)) / 2 +
                      static_cast<int>(rng.below(24));
        p[(static_cast<size_t>(y) * w + x) * channels + c] = static_cast<uint8_t>(v & 255);
      }
    }
  }
  return p;
}

Bytes jpeg(int w, int h, int pixel_format, int samp, int quality, int flags, uint64_t seed) {
  const int channels = tjPixelSize[pixel_format];
  const Bytes pixels = photo_like(w, h, channels, seed);
  tjhandle handle = tjInitCompress();
  unsigned char* out = nullptr;
  unsigned long size = 0;
  if (tjCompress2(handle, pixels.data(), w, 0, h, pixel_format, &out, &size, samp, quality, flags) != 0) {
    die(std::string("seed JPEG encoding failed: ") + tjGetErrorStr2(handle));
  }
  Bytes b(out, out + size);
  tjFree(out);
  tjDestroy(handle);
  return b;
}

Bytes png(int w, int h, uint8_t color_type, uint8_t depth, bool interlace, bool trns, uint64_t seed) {
  spng_ctx* ctx = spng_ctx_new(SPNG_CTX_ENCODER);
  spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1);
  spng_ihdr ihdr{};
  ihdr.width = static_cast<uint32_t>(w);
  ihdr.height = static_cast<uint32_t>(h);
  ihdr.bit_depth = depth;
  ihdr.color_type = color_type;
  ihdr.interlace_method = interlace ? 1 : 0;
  spng_set_ihdr(ctx, &ihdr);
  int samples = color_type == SPNG_COLOR_TYPE_TRUECOLOR ? 3 : color_type == SPNG_COLOR_TYPE_TRUECOLOR_ALPHA ? 4
              : color_type == SPNG_COLOR_TYPE_GRAYSCALE_ALPHA ? 2 : 1;
  if (color_type == SPNG_COLOR_TYPE_INDEXED) {
    spng_plte plte{};
    plte.n_entries = 1u << depth;
    for (uint32_t i = 0; i < plte.n_entries; ++i) {
      plte.entries[i] = {static_cast<uint8_t>(i * 37), static_cast<uint8_t>(i * 91), static_cast<uint8_t>(255 - i), 0};
    }
    spng_set_plte(ctx, &plte);
    if (trns) {
      spng_trns t{};
      t.n_type3_entries = 3;
      t.type3_alpha[0] = 0, t.type3_alpha[1] = 128, t.type3_alpha[2] = 255;
      spng_set_trns(ctx, &t);
    }
  }
  // Packed rows for bit depths below 8, big-endian samples for 16.
  const size_t row = (static_cast<size_t>(w) * samples * depth + 7) / 8;
  Bytes pixels = photo_like(static_cast<int>(row), h, 1, seed);
  if (color_type == SPNG_COLOR_TYPE_INDEXED && depth == 8) {
    for (auto& v : pixels) v = static_cast<uint8_t>(v % (1u << depth));
  }
  int rc = spng_encode_image(ctx, pixels.data(), pixels.size(), SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
  if (rc != 0) die(std::string("seed PNG encoding failed: ") + spng_strerror(rc));
  size_t size = 0;
  void* buf = spng_get_png_buffer(ctx, &size, &rc);
  if (buf == nullptr) die("seed PNG buffer missing");
  Bytes b(static_cast<uint8_t*>(buf), static_cast<uint8_t*>(buf) + size);
  std::free(buf);
  spng_ctx_free(ctx);
  return b;
}

std::vector<Bytes> seed_corpus() {
  std::vector<Bytes> seeds;
  seeds.push_back(jpeg(67, 45, TJPF_RGB, TJSAMP_420, 75, 0, 1));
  seeds.push_back(jpeg(64, 48, TJPF_RGB, TJSAMP_422, 90, 0, 2));
  seeds.push_back(jpeg(33, 70, TJPF_RGB, TJSAMP_444, 95, 0, 3));
  seeds.push_back(jpeg(80, 52, TJPF_RGB, TJSAMP_420, 85, TJFLAG_PROGRESSIVE, 4));
  seeds.push_back(jpeg(41, 39, TJPF_GRAY, TJSAMP_GRAY, 80, 0, 5));
  seeds.push_back(jpeg(50, 34, TJPF_CMYK, TJSAMP_420, 88, 0, 6));
  seeds.push_back(jpeg(29, 61, TJPF_RGB, TJSAMP_440, 70, TJFLAG_PROGRESSIVE, 7));
  seeds.push_back(png(37, 23, SPNG_COLOR_TYPE_TRUECOLOR, 8, false, false, 8));
  seeds.push_back(png(30, 20, SPNG_COLOR_TYPE_TRUECOLOR_ALPHA, 8, true, false, 9));
  seeds.push_back(png(25, 31, SPNG_COLOR_TYPE_GRAYSCALE, 8, false, false, 10));
  seeds.push_back(png(22, 18, SPNG_COLOR_TYPE_GRAYSCALE, 16, false, false, 11));
  seeds.push_back(png(19, 27, SPNG_COLOR_TYPE_GRAYSCALE_ALPHA, 8, false, false, 12));
  seeds.push_back(png(21, 17, SPNG_COLOR_TYPE_TRUECOLOR, 16, true, false, 13));
  seeds.push_back(png(26, 26, SPNG_COLOR_TYPE_INDEXED, 8, false, true, 14));
  seeds.push_back(png(35, 12, SPNG_COLOR_TYPE_INDEXED, 2, false, false, 15));
  seeds.push_back(png(18, 22, SPNG_COLOR_TYPE_GRAYSCALE, 1, true, false, 16));
  return seeds;
}

// ---- mutation ---------------------------------------------------------------------------------

// Offsets of JPEG marker segments' fields (after FF xx) and of PNG chunk starts, so that pokes
// hit the fields decoders trust most.
std::vector<size_t> structure_offsets(const Bytes& b) {
  std::vector<size_t> at;
  if (b.size() > 8 && b[0] == 0x89) {
    for (size_t p = 8; p + 8 <= b.size();) {
      at.push_back(p);
      const uint32_t len = uint32_t{b[p]} << 24 | uint32_t{b[p + 1]} << 16 | uint32_t{b[p + 2]} << 8 | b[p + 3];
      if (len > b.size()) break;
      p += 12 + len;
    }
  } else {
    for (size_t p = 2; p + 4 < b.size(); ++p) {
      if (b[p] == 0xFF && b[p + 1] != 0 && b[p + 1] != 0xFF) at.push_back(p + 2);
    }
  }
  return at;
}

Bytes mutate(const Bytes& seed, bnn::data::Rng& rng) {
  Bytes b = seed;
  const int rounds = 1 + static_cast<int>(rng.below(3));
  for (int r = 0; r < rounds && !b.empty(); ++r) {
    switch (rng.below(8)) {
      case 0: {  // bit flips
        const int n = 1 + static_cast<int>(rng.below(8));
        for (int i = 0; i < n; ++i) b[rng.below(b.size())] ^= static_cast<uint8_t>(1u << rng.below(8));
        break;
      }
      case 1: {  // random bytes
        const int n = 1 + static_cast<int>(rng.below(4));
        for (int i = 0; i < n; ++i) b[rng.below(b.size())] = static_cast<uint8_t>(rng.next());
        break;
      }
      case 2:  // truncation
        b.resize(rng.below(b.size()));
        break;
      case 3:
      case 4: {  // poke a structural field: a length, a dimension, a count, a CRC
        const auto at = structure_offsets(b);
        if (at.empty()) break;
        const size_t p = at[rng.below(at.size())] + rng.below(12);
        static constexpr uint8_t kValues[] = {0x00, 0x01, 0x7F, 0x80, 0xFF, 0x10, 0x03, 0x04, 0x08, 0x11, 0x22};
        if (p < b.size()) b[p] = rng.below(3) == 0 ? static_cast<uint8_t>(rng.next()) : kValues[rng.below(sizeof kValues)];
        if (p + 1 < b.size() && rng.below(2) == 0) b[p + 1] = kValues[rng.below(sizeof kValues)];
        break;
      }
      case 5: {  // duplicate a run (repeated segments / chunks)
        const size_t from = rng.below(b.size());
        const size_t len = std::min<size_t>(b.size() - from, 1 + rng.below(64));
        const size_t to = rng.below(b.size());
        Bytes run(b.begin() + static_cast<long>(from), b.begin() + static_cast<long>(from + len));
        b.insert(b.begin() + static_cast<long>(to), run.begin(), run.end());
        break;
      }
      case 6: {  // delete a run
        const size_t from = rng.below(b.size());
        const size_t len = std::min<size_t>(b.size() - from, 1 + rng.below(64));
        b.erase(b.begin() + static_cast<long>(from), b.begin() + static_cast<long>(from + len));
        break;
      }
      default: {  // a huge dimension or length written big-endian at a structural field
        const auto at = structure_offsets(b);
        if (at.empty()) break;
        const size_t p = at[rng.below(at.size())] + rng.below(8);
        for (size_t i = 0; i < 4 && p + i < b.size(); ++i) b[p + i] = i == 0 ? 0x7F : 0xFF;
        break;
      }
    }
  }
  return b;
}

// ---- the cases --------------------------------------------------------------------------------

void check_image(const Decoded& d, int channels, long case_id) {
  const Image& im = d.image;
  if (im.width <= 0 || im.height <= 0 || im.channels != channels ||
      im.pixels.size() != static_cast<size_t>(im.width) * im.height * channels || im.width > kMaxSide ||
      im.height > kMaxSide) {
    die("decode returned inconsistent dimensions (case " + std::to_string(case_id) + ")");
  }
  if (d.crop.x0 < 0 || d.crop.y0 < 0 || d.crop.x1 > im.width + 1e-9 || d.crop.y1 > im.height + 1e-9 ||
      d.crop.x0 >= d.crop.x1 || d.crop.y0 >= d.crop.y1) {
    die("decode returned a crop outside its pixels (case " + std::to_string(case_id) + ")");
  }
}

void fuzz_image(const Bytes& data, long case_id, bnn::data::Rng& rng, Counts& counts) {
  const uint8_t* p = data.data();
  const size_t n = data.size();
  ImageInfo info{};
  bool probed = false;
  expect("probe", case_id, counts, [&] {
    info = probe(p, n, "fuzz");
    probed = true;
    if (info.width <= 0 || info.height <= 0 || info.channels < 1 || info.channels > 4) die("probe returned bad info");
  });
  for (int channels : {3, 1}) {
    expect("decode", case_id, counts, [&] {
      DecodeRequest request;
      request.channels = channels;
      check_image(decode(p, n, request, "fuzz"), channels, case_id);
    });
    if (!probed || static_cast<int64_t>(info.width) * info.height > (int64_t{1} << 22)) continue;
    expect("region decode", case_id, counts, [&] {
      DecodeRequest request;
      request.channels = channels;
      const int w = 1 + static_cast<int>(rng.below(static_cast<uint64_t>(info.width)));
      const int h = 1 + static_cast<int>(rng.below(static_cast<uint64_t>(info.height)));
      request.crop = Rect{static_cast<int>(rng.below(static_cast<uint64_t>(info.width - w) + 1)),
                          static_cast<int>(rng.below(static_cast<uint64_t>(info.height - h) + 1)), w, h};
      static constexpr int kScales[] = {1, 2, 4, 8};
      request.scale_eighths = kScales[rng.below(4)];
      check_image(decode(p, n, request, "fuzz"), channels, case_id);
    });
    TransformSpec spec;
    spec.channels = channels;
    spec.size = 16 + static_cast<int>(rng.below(32));
    spec.dct_headroom = 1.0 + static_cast<double>(rng.below(3));
    spec.dct_scaling = rng.below(4) != 0;
    if (rng.below(2) == 0) {
      spec.jitter = ColorJitter{0.4, 0.4, 0.4, 0.1};
      spec.lighting_std = 0.1;
      spec.rotation_degrees = 15;
    }
    std::vector<uint8_t> out(static_cast<size_t>(spec.size) * spec.size * channels);
    expect("render train", case_id, counts, [&] { render(p, n, spec, 3, 0, case_id, out.data(), "fuzz"); });
    spec.mode = TransformMode::Eval;
    spec.resize = spec.size + static_cast<int>(rng.below(16));
    expect("render eval", case_id, counts, [&] { render(p, n, spec, 3, 0, case_id, out.data(), "fuzz"); });
  }
  if (case_id % 8 == 0) {
    expect("prepare", case_id, counts, [&] {
      PrepareOptions options;
      options.max_side = 24;
      options.raw_max_side = case_id % 16 == 0 ? 32 : 0;
      const PreparedRecord r = prepare_record(p, n, options, "fuzz");
      if (r.bytes.empty() || r.width <= 0 || r.height <= 0) die("prepare returned an empty record");
    });
  }
}

Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) die(path + ": cannot open");
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

void write_file(const std::string& path, const Bytes& b) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

void fuzz_stores(const std::vector<Bytes>& seeds, long cases, const std::string& dir, Counts& counts) {
  const std::string good = dir + "/good.bnnstore";
  {
    StoreWriter writer(good, {"cats", "dogs", "x"}, 32);
    PrepareOptions options;
    options.max_side = 32;
    uint64_t position = 0;
    for (size_t i = 0; i < seeds.size(); ++i) {
      options.raw_max_side = i % 2 ? 64 : 0;
      writer.add(position++, prepare_record(seeds[i].data(), seeds[i].size(), options, "seed"),
                 static_cast<uint32_t>(i % 3));
    }
    writer.finish();
  }
  const Bytes store = read_file(good);
  {
    // The pristine store must read back completely.
    const auto s = Store::open(good);
    TransformSpec spec;
    spec.size = 20;
    std::vector<uint8_t> out(20 * 20 * 3);
    for (size_t i = 0; i < s->size(); ++i) render_record(*s, i, spec, 1, 0, static_cast<int64_t>(i), out.data());
  }
  const std::string bad = dir + "/bad.bnnstore";
  for (long c = 0; c < cases; ++c) {
    bnn::data::Rng rng(bnn::data::hash_words({0x5707E, static_cast<uint64_t>(c)}));
    Bytes b = store;
    // Header, class table and index are what open() must distrust; hit them most.
    const size_t tail = b.size() > 600 ? b.size() - 600 : 0;
    const int flips = 1 + static_cast<int>(rng.below(4));
    for (int i = 0; i < flips; ++i) {
      const uint64_t where = rng.below(3);
      const size_t at = where == 0 ? rng.below(64) : where == 1 ? tail + rng.below(b.size() - tail) : rng.below(b.size());
      b[at] = rng.below(2) ? static_cast<uint8_t>(b[at] ^ (1u << rng.below(8))) : static_cast<uint8_t>(rng.next());
    }
    if (rng.below(5) == 0) b.resize(rng.below(b.size()));
    write_file(bad, b);
    expect("store", c, counts, [&] {
      const auto s = Store::open(bad);
      TransformSpec spec;
      spec.size = 12;
      std::vector<uint8_t> out(12 * 12 * 3);
      for (size_t i = 0; i < s->size(); ++i) {
        try {
          render_record(*s, i, spec, 1, 0, static_cast<int64_t>(i), out.data());
        } catch (const bnn::Error&) {
          // A damaged record is an accepted outcome; keep reading the others.
        }
      }
    });
  }
}

}  // namespace

int main(int argc, char** argv) {
  const long cases = argc > 1 ? std::atol(argv[1]) : 5000;
  std::vector<Bytes> seeds = seed_corpus();
  for (int i = 2; i < argc; ++i) seeds.push_back(read_file(argv[i]));

  Counts counts;
  // Every seed must decode cleanly before mutation means anything.
  for (size_t i = 0; i < seeds.size(); ++i) {
    try {
      DecodeRequest request;
      decode(seeds[i].data(), seeds[i].size(), request, "seed");
    } catch (const std::exception& e) {
      die("seed " + std::to_string(i) + " does not decode: " + e.what());
    }
  }
  for (long c = 0; c < cases; ++c) {
    bnn::data::Rng rng(bnn::data::hash_words({0xF022, static_cast<uint64_t>(c)}));
    const Bytes& seed = seeds[static_cast<size_t>(c) % seeds.size()];
    fuzz_image(mutate(seed, rng), c, rng, counts);
  }
  const Counts image_counts = counts;

  char dir_template[] = "/tmp/bnn-image-fuzz-XXXXXX";
  const char* dir = mkdtemp(dir_template);
  if (dir == nullptr) die("cannot create a temporary directory");
  Counts store_counts;
  fuzz_stores(seeds, std::max(1L, cases / 5), dir, store_counts);
  std::remove((std::string(dir) + "/good.bnnstore").c_str());
  std::remove((std::string(dir) + "/bad.bnnstore").c_str());
  rmdir(dir);

  std::printf("fuzz_image: %ld image cases over %zu seeds: %ld calls succeeded, %ld rejected with bnn::Error; "
              "%ld store cases: %ld opened and read, %ld rejected\n",
              cases, seeds.size(), image_counts.ok, image_counts.rejected, std::max(1L, cases / 5), store_counts.ok,
              store_counts.rejected);
  return 0;
}
