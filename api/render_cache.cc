#include "api/render_cache.h"

namespace kiln::api {

RenderCache::Body RenderCache::Get(const std::string& key, int64_t changes) {
  std::lock_guard lock(mu_);
  auto it = index_.find(key);
  if (it == index_.end() || it->second->changes != changes) {
    ++misses_;
    return nullptr;
  }
  lru_.splice(lru_.begin(), lru_, it->second);
  ++hits_;
  return it->second->body;
}

void RenderCache::Put(const std::string& key, int64_t changes, Body body) {
  if (!body || body->size() > byte_limit_) return;
  std::lock_guard lock(mu_);
  if (auto it = index_.find(key); it != index_.end()) {
    // A reader that read an older count must not replace a newer body.
    if (it->second->changes > changes) return;
    bytes_ -= it->second->body->size();
    lru_.erase(it->second);
    index_.erase(it);
  }
  bytes_ += body->size();
  lru_.push_front(Entry{key, changes, std::move(body)});
  index_[key] = lru_.begin();
  EvictLocked();
}

void RenderCache::EvictLocked() {
  while (bytes_ > byte_limit_ && !lru_.empty()) {
    Entry& last = lru_.back();
    bytes_ -= last.body->size();
    index_.erase(last.key);
    lru_.pop_back();
  }
}

size_t RenderCache::bytes() const {
  std::lock_guard lock(mu_);
  return bytes_;
}

size_t RenderCache::size() const {
  std::lock_guard lock(mu_);
  return index_.size();
}

uint64_t RenderCache::hits() const {
  std::lock_guard lock(mu_);
  return hits_;
}

uint64_t RenderCache::misses() const {
  std::lock_guard lock(mu_);
  return misses_;
}

}  // namespace kiln::api
