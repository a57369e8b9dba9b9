#include "core/cpu_allocator.h"

#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <vector>

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

namespace bnn {

namespace {

constexpr size_t kMinCached = 256 * 1024;
constexpr size_t kGranule = 4096;

class CachingCpuAllocator final : public c10::Allocator {
 public:
  CachingCpuAllocator() {
    const char* env = std::getenv("BNN_CPU_CACHE_MB");
    limit_ = (env ? std::strtoull(env, nullptr, 10) : 4096ULL) << 20;
  }

  c10::DataPtr allocate(size_t nbytes) override {
    if (nbytes < kMinCached) {
      void* p = c10::alloc_cpu(nbytes);
      return {p, p, &free_small, c10::Device(c10::DeviceType::CPU)};
    }
    const size_t size = (nbytes + kGranule - 1) / kGranule * kGranule;
    void* p = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.find(size);
      if (it != free_.end() && !it->second.empty()) {
        p = it->second.back();
        it->second.pop_back();
        cached_ -= static_cast<int64_t>(size);
        ++hits_;
      } else {
        ++misses_;
      }
    }
    if (!p) p = c10::alloc_cpu(size);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      live_[p] = size;
      allocated_ += static_cast<int64_t>(size);
    }
    return {p, p, &free_cached, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &free_any; }

  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }

  void release(void* p) {
    std::unique_lock<std::mutex> lock(mutex_);
    auto it = live_.find(p);
    if (it == live_.end()) {  // not ours (cannot happen for DataPtrs we made; be safe)
      lock.unlock();
      c10::free_cpu(p);
      return;
    }
    const size_t size = it->second;
    live_.erase(it);
    allocated_ -= static_cast<int64_t>(size);
    if (static_cast<size_t>(cached_) + size > limit_) {
      lock.unlock();
      c10::free_cpu(p);
      return;
    }
    free_[size].push_back(p);
    cached_ += static_cast<int64_t>(size);
  }

  bool owns(void* p) {
    std::lock_guard<std::mutex> lock(mutex_);
    return live_.count(p) > 0;
  }

  void empty() {
    std::vector<void*> drop;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto& [size, blocks] : free_) drop.insert(drop.end(), blocks.begin(), blocks.end());
      free_.clear();
      cached_ = 0;
    }
    for (void* p : drop) c10::free_cpu(p);
  }

  CpuCacheStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return {cached_, allocated_, hits_, misses_};
  }

  static CachingCpuAllocator& instance() {
    // Leaked on purpose: tensors may be freed during static destruction at exit.
    static auto* allocator = new CachingCpuAllocator();
    return *allocator;
  }

 private:
  static void free_small(void* p) { c10::free_cpu(p); }
  static void free_cached(void* p) { instance().release(p); }
  static void free_any(void* p) {
    if (instance().owns(p)) instance().release(p);
    else c10::free_cpu(p);
  }

  std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  std::unordered_map<void*, size_t> live_;
  int64_t cached_ = 0;
  int64_t allocated_ = 0;
  int64_t hits_ = 0;
  int64_t misses_ = 0;
  size_t limit_;
};

}  // namespace

void install_caching_cpu_allocator() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (const char* off = std::getenv("BNN_CPU_CACHE"); off && std::string(off) == "0") return;
    c10::SetAllocator(c10::DeviceType::CPU, &CachingCpuAllocator::instance(), /*priority=*/1);
  });
}

CpuCacheStats cpu_cache_stats() { return CachingCpuAllocator::instance().stats(); }

void empty_cpu_cache() { CachingCpuAllocator::instance().empty(); }

}  // namespace bnn
