// A command-line window onto the image core, for comparing it with PIL (compare_pil.py) and for
// timing it. Pixels go to an output file as raw HWC bytes; metadata goes to stdout as JSON.
//
//   image_tool decode FILE CHANNELS OUT [X Y W H [SCALE_EIGHTHS]]
//   image_tool eval FILE CHANNELS SIZE RESIZE DCT OUT [headroom H]
//   image_tool train FILE CHANNELS SIZE SEED EPOCH SAMPLE DCT OUT [jitter B C S H] [lighting STD]
//                    [rotation DEG nearest|bilinear] [noflip] [headroom H]
//   image_tool op NAME VALUE RAW_IN WIDTH HEIGHT CHANNELS OUT
//       NAME: brightness contrast saturation hue rotate-nearest rotate-bilinear lighting (VALUE
//       is then "a0,a1,a2") resize (VALUE is "OW,OH[,X0,Y0,X1,Y1]")
//   image_tool store OUT MAX_SIDE RAW_MAX FILE...     (labels: position % 2, classes "a", "b")
//   image_tool store-render STORE INDEX CHANNELS SIZE OUT    (eval transform of one record)
//   image_tool bench SIZE FILE...
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "core/errors.h"
#include "image/decode.h"
#include "image/ops.h"
#include "image/resize.h"
#include "image/store.h"
#include "image/transforms.h"

using namespace bnn::image;

namespace {

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) bnn::fail(bnn::ErrorKind::Io, path + ": cannot open");
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void write_file(const std::string& path, const uint8_t* data, size_t size) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!out) bnn::fail(bnn::ErrorKind::Io, path + ": cannot write");
}

std::vector<double> numbers(const std::string& csv) {
  std::vector<double> v;
  std::stringstream ss(csv);
  std::string item;
  while (std::getline(ss, item, ',')) v.push_back(std::stod(item));
  return v;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int run(int argc, char** argv) {
  const std::string cmd = argc > 1 ? argv[1] : "";
  auto arg = [&](int i) -> std::string {
    if (i >= argc) bnn::fail(bnn::ErrorKind::InvalidArgument, "missing argument " + std::to_string(i));
    return argv[i];
  };
  if (cmd == "decode") {
    const auto bytes = read_file(arg(2));
    DecodeRequest request;
    request.channels = std::stoi(arg(3));
    if (argc > 8) request.crop = Rect{std::stoi(arg(5)), std::stoi(arg(6)), std::stoi(arg(7)), std::stoi(arg(8))};
    if (argc > 9) request.scale_eighths = std::stoi(arg(9));
    const Decoded d = decode(bytes.data(), bytes.size(), request, arg(2));
    write_file(arg(4), d.image.pixels.data(), d.image.pixels.size());
    std::printf("{\"width\": %d, \"height\": %d, \"channels\": %d, \"scale\": %d, \"x\": %d, \"y\": %d, "
                "\"crop\": [%.17g, %.17g, %.17g, %.17g]}\n",
                d.image.width, d.image.height, d.image.channels, d.scale_eighths, d.x, d.y, d.crop.x0, d.crop.y0,
                d.crop.x1, d.crop.y1);
    return 0;
  }
  if (cmd == "eval" || cmd == "train") {
    const auto bytes = read_file(arg(2));
    TransformSpec spec;
    spec.mode = cmd == "eval" ? TransformMode::Eval : TransformMode::Train;
    spec.channels = std::stoi(arg(3));
    spec.size = std::stoi(arg(4));
    uint64_t seed = 0;
    int64_t epoch = 0, sample = 0;
    std::string out;
    int next;
    if (cmd == "eval") {
      spec.resize = std::stoi(arg(5));
      spec.dct_scaling = arg(6) == "1";
      out = arg(7);
      next = 8;
    } else {
      seed = std::stoull(arg(5));
      epoch = std::stoll(arg(6));
      sample = std::stoll(arg(7));
      spec.dct_scaling = arg(8) == "1";
      out = arg(9);
      next = 10;
    }
    while (next < argc) {
      const std::string opt = arg(next++);
      if (opt == "jitter") {
        spec.jitter = ColorJitter{std::stod(arg(next)), std::stod(arg(next + 1)), std::stod(arg(next + 2)),
                                  std::stod(arg(next + 3))};
        next += 4;
      } else if (opt == "lighting") {
        spec.lighting_std = std::stod(arg(next++));
      } else if (opt == "rotation") {
        spec.rotation_degrees = std::stod(arg(next++));
        spec.rotation_interpolation = arg(next++) == "bilinear" ? Interpolation::Bilinear : Interpolation::Nearest;
      } else if (opt == "headroom") {
        spec.dct_headroom = std::stod(arg(next++));
      } else if (opt == "noflip") {
        spec.hflip = false;
      } else {
        bnn::fail(bnn::ErrorKind::InvalidArgument, "unknown option " + opt);
      }
    }
    std::vector<uint8_t> dst(static_cast<size_t>(spec.size) * spec.size * spec.channels);
    render(bytes.data(), bytes.size(), spec, seed, epoch, sample, dst.data(), arg(2));
    write_file(out, dst.data(), dst.size());
    const ImageInfo info = probe(bytes.data(), bytes.size());
    const TransformDraw d = draw_transform(spec, info.width, info.height, seed, epoch, sample);
    std::printf("{\"crop\": [%d, %d, %d, %d], \"flip\": %s, \"angle\": %.17g, \"order\": [%d, %d, %d, %d], "
                "\"factors\": [%.17g, %.17g, %.17g, %.17g], \"alpha\": [%.17g, %.17g, %.17g]}\n",
                d.crop.x, d.crop.y, d.crop.width, d.crop.height, d.flip ? "true" : "false", d.angle,
                d.jitter_order[0], d.jitter_order[1], d.jitter_order[2], d.jitter_order[3], d.jitter_factor[0],
                d.jitter_factor[1], d.jitter_factor[2], d.jitter_factor[3], d.lighting_alpha[0],
                d.lighting_alpha[1], d.lighting_alpha[2]);
    return 0;
  }
  if (cmd == "op") {
    const std::string name = arg(2);
    const std::string value = arg(3);
    std::vector<uint8_t> pixels = read_file(arg(4));
    const int w = std::stoi(arg(5)), h = std::stoi(arg(6)), c = std::stoi(arg(7));
    if (pixels.size() != static_cast<size_t>(w) * h * c) bnn::fail(bnn::ErrorKind::InvalidArgument, "raw size");
    const size_t n = static_cast<size_t>(w) * h;
    if (name == "brightness") adjust_brightness(pixels.data(), n, c, std::stod(value));
    else if (name == "contrast") adjust_contrast(pixels.data(), n, c, std::stod(value));
    else if (name == "saturation") adjust_saturation(pixels.data(), n, c, std::stod(value));
    else if (name == "hue") adjust_hue(pixels.data(), n, c, std::stod(value));
    else if (name == "lighting") {
      const auto a = numbers(value);
      lighting(pixels.data(), n, c, a.data());
    } else if (name == "rotate-nearest" || name == "rotate-bilinear") {
      std::vector<uint8_t> out(pixels.size());
      rotate(pixels.data(), out.data(), w, h, c, std::stod(value),
             name == "rotate-nearest" ? Interpolation::Nearest : Interpolation::Bilinear);
      pixels = std::move(out);
    } else if (name == "resize") {
      const auto v = numbers(value);
      const int ow = static_cast<int>(v[0]), oh = static_cast<int>(v[1]);
      const Box box = v.size() >= 6 ? Box{v[2], v[3], v[4], v[5]} : Box{0, 0, double(w), double(h)};
      std::vector<uint8_t> out(static_cast<size_t>(ow) * oh * c);
      const View view{pixels.data(), w, h, c, static_cast<size_t>(w) * c};
      Resampler(w, h, box, ow, oh).run(view, 0, 0, Rect{0, 0, ow, oh}, out.data());
      pixels = std::move(out);
    } else {
      bnn::fail(bnn::ErrorKind::InvalidArgument, "unknown op " + name);
    }
    write_file(arg(8), pixels.data(), pixels.size());
    std::printf("{\"avx2\": %s}\n", resize_uses_avx2() ? "true" : "false");
    return 0;
  }
  if (cmd == "store") {
    PrepareOptions options;
    options.max_side = std::stoi(arg(3));
    options.raw_max_side = std::stoi(arg(4));
    StoreWriter writer(arg(2), {"a", "b"}, options.max_side);
    for (int i = 5; i < argc; ++i) {
      const auto bytes = read_file(argv[i]);
      writer.add(static_cast<uint64_t>(i - 5), prepare_record(bytes.data(), bytes.size(), options, argv[i]),
                 static_cast<uint32_t>((i - 5) % 2));
    }
    std::printf("{\"records\": %zu}\n", writer.finish());
    return 0;
  }
  if (cmd == "store-render") {
    const auto store = Store::open(arg(2));
    TransformSpec spec;
    spec.mode = TransformMode::Eval;
    spec.channels = std::stoi(arg(4));
    spec.size = std::stoi(arg(5));
    spec.resize = spec.size * 256 / 224;
    std::vector<uint8_t> dst(static_cast<size_t>(spec.size) * spec.size * spec.channels);
    const size_t i = std::stoul(arg(3));
    render_record(*store, i, spec, 0, 0, 0, dst.data());
    write_file(arg(6), dst.data(), dst.size());
    const StoreRecord r = store->record(i);
    std::printf("{\"records\": %zu, \"width\": %d, \"height\": %d, \"encoding\": %d, \"label\": %u, \"bytes\": %zu}\n",
                store->size(), r.width, r.height, static_cast<int>(r.encoding), r.label, r.size);
    return 0;
  }
  if (cmd == "bench") {
    const int size = std::stoi(arg(2));
    std::vector<std::vector<uint8_t>> files;
    for (int i = 3; i < argc; ++i) files.push_back(read_file(argv[i]));
    auto timed = [&](const char* label, auto&& body) {
      const int rounds = 3;
      const auto t0 = std::chrono::steady_clock::now();
      for (int r = 0; r < rounds; ++r) {
        for (size_t i = 0; i < files.size(); ++i) body(files[i], r * files.size() + i);
      }
      const double s = seconds_since(t0);
      std::printf("{\"what\": \"%s\", \"images_per_s\": %.1f, \"ms_per_image\": %.3f}\n", label,
                  rounds * files.size() / s, 1000 * s / (rounds * files.size()));
    };
    std::vector<uint8_t> dst(static_cast<size_t>(size) * size * 3);
    timed("decode full scale", [&](const std::vector<uint8_t>& f, size_t) {
      decode(f.data(), f.size(), DecodeRequest{}, "bench");
    });
    TransformSpec spec;
    spec.size = size;
    spec.hflip = false;
    timed("decode RandomResizedCrop region (DCT scaling on)", [&](const std::vector<uint8_t>& f, size_t k) {
      const ImageInfo info = probe(f.data(), f.size());
      const TransformDraw d = draw_transform(spec, info.width, info.height, 1, 0, static_cast<int64_t>(k));
      DecodeRequest request;
      request.crop = d.crop;
      request.min_width = request.min_height = size;
      decode(f.data(), f.size(), request, "bench");
    });
    spec.hflip = true;
    for (int dct = 1; dct >= 0; --dct) {
      spec.dct_scaling = dct == 1;
      timed(dct ? "train transform (DCT scaling on)" : "train transform (DCT scaling off)",
            [&](const std::vector<uint8_t>& f, size_t k) {
              render(f.data(), f.size(), spec, 1, 0, static_cast<int64_t>(k), dst.data());
            });
    }
    TransformSpec jitter = spec;
    jitter.dct_scaling = true;
    jitter.jitter = ColorJitter{0.4, 0.4, 0.4, 0};
    jitter.lighting_std = 0.1;
    timed("train transform + ColorJitter(0.4,0.4,0.4) + Lighting", [&](const std::vector<uint8_t>& f, size_t k) {
      render(f.data(), f.size(), jitter, 1, 0, static_cast<int64_t>(k), dst.data());
    });
    TransformSpec eval;
    eval.mode = TransformMode::Eval;
    eval.size = size;
    eval.resize = size * 256 / 224;
    timed("eval transform", [&](const std::vector<uint8_t>& f, size_t k) {
      render(f.data(), f.size(), eval, 1, 0, 0, dst.data());
    });
    std::printf("{\"avx2\": %s}\n", resize_uses_avx2() ? "true" : "false");
    return 0;
  }
  std::fprintf(stderr, "usage: see the comment at the top of image_tool.cpp\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
