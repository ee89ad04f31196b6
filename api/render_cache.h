// Rendered answers of the API (a workflow's JSON, a page of a list), kept until the store
// changes. Each body is stored with the store's change count read before the rows it was
// rendered from (store::Store::ChangeCount); a reader that reads the same count finds it still
// true. Bodies are shared, never copied: a response holds its body while it is written.
//
// Thread-safety: every member may be called from any thread.
#ifndef KILN_API_RENDER_CACHE_H_
#define KILN_API_RENDER_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace kiln::api {

class RenderCache {
 public:
  using Body = std::shared_ptr<const std::string>;

  // Keeps at most `byte_limit` bytes of bodies (0 keeps none), dropping the least recently used.
  explicit RenderCache(size_t byte_limit) : byte_limit_(byte_limit) {}

  // The body stored under `key` for change count `changes`, or null.
  Body Get(const std::string& key, int64_t changes);
  // Stores `body` under `key` as rendered at change count `changes`; replaces an older one.
  void Put(const std::string& key, int64_t changes, Body body);

  size_t bytes() const;
  size_t size() const;
  uint64_t hits() const;
  uint64_t misses() const;

 private:
  struct Entry {
    std::string key;
    int64_t changes = 0;
    Body body;
  };
  void EvictLocked();

  const size_t byte_limit_;
  mutable std::mutex mu_;
  std::list<Entry> lru_;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
  size_t bytes_ = 0;
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
};

}  // namespace kiln::api

#endif  // KILN_API_RENDER_CACHE_H_
