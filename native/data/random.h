#pragma once
// Seeded randomness for the data pipeline. Shuffles and augmentations must be a pure function of
// (seed, epoch, ...) on every platform and standard library, so that a resumed run sees exactly the
// order and crops an uninterrupted one would have: std::shuffle and std::uniform_int_distribution
// are implementation-defined, so the few primitives needed are written out here.
#include <cstdint>
#include <vector>

namespace bnn::data {

// SplitMix64's finaliser: a bijective 64-bit mixer with good avalanche.
inline uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Hashes a tuple of words into one seed; chaining mix64 keeps (a, b) and (b, a) apart.
inline uint64_t hash_words(std::initializer_list<uint64_t> words) {
  uint64_t h = 0x6A09E667F3BCC908ull;
  for (uint64_t w : words) h = mix64(h ^ w);
  return h;
}

// Distinct streams drawn from one user seed, so that, say, the validation split does not
// correlate with the epoch-0 shuffle.
enum class Stream : uint64_t { Shuffle = 1, Augment = 2, ValidationSplit = 3, ImageAugment = 4 };

// A SplitMix64 generator: tiny state, statistically fine for shuffles and crop offsets.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() { return mix64(state_ += 0x9E3779B97F4A7C15ull); }
  // Uniform in [0, bound) without modulo bias (Lemire's multiply-and-reject). bound must be > 0.
  uint64_t below(uint64_t bound) {
    unsigned __int128 m = static_cast<unsigned __int128>(next()) * bound;
    uint64_t low = static_cast<uint64_t>(m);
    if (low < bound) {
      const uint64_t threshold = -bound % bound;
      while (low < threshold) {
        m = static_cast<unsigned __int128>(next()) * bound;
        low = static_cast<uint64_t>(m);
      }
    }
    return static_cast<uint64_t>(m >> 64);
  }

 private:
  uint64_t state_;
};

// A permutation of 0..n-1 (Fisher-Yates), the same for the same seed everywhere.
inline std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  Rng rng(seed);
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(rng.below(static_cast<uint64_t>(i) + 1));
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return order;
}

}  // namespace bnn::data
