// kubesim's storage: objects per resource, one global resourceVersion counter (as etcd's
// revision), a bounded history of changes for watches, and synchronous change listeners.
// Thread-safety: none; owned by the server's io_context thread.
#ifndef KILN_TESTS_KUBESIM_STORE_H_
#define KILN_TESTS_KUBESIM_STORE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tests/kubesim/resources.h"

namespace kiln::kubesim {

using nlohmann::json;
using ObjectPtr = std::shared_ptr<const json>;

enum class EventType { kAdded, kModified, kDeleted };
std::string_view EventTypeName(EventType type);

struct StoreEvent {
  EventType type;
  const ResourceInfo* resource;
  uint64_t rv;
  ObjectPtr object;  // the new state (for kDeleted, the last state stamped with `rv`)
  ObjectPtr old;     // the previous state, null for kAdded
};

class Store {
 public:
  explicit Store(size_t history_limit) : history_limit_(history_limit) {}

  uint64_t rv() const { return rv_; }

  ObjectPtr Get(const ResourceInfo& r, std::string_view ns, std::string_view name) const;
  // Objects sorted by namespace then name; `ns` empty means every namespace. Items whose
  // "ns/name" key is not after `after` are skipped (for continue tokens).
  std::vector<ObjectPtr> List(const ResourceInfo& r, std::string_view ns,
                              std::string_view after = {}) const;
  size_t Count(const ResourceInfo& r) const;

  // Stores `object` (creating or replacing by namespace/name), stamping
  // metadata.resourceVersion with the next revision. Returns the stored object.
  ObjectPtr Put(const ResourceInfo& r, json object);
  // Removes the object; returns its last state (`last` when given, else the stored one) stamped
  // with a new revision, or null when there is no such object.
  ObjectPtr Remove(const ResourceInfo& r, std::string_view ns, std::string_view name,
                   std::optional<json> last = std::nullopt);

  // Changes after `rv`, oldest first. Returns false when the history no longer reaches back to
  // `rv`; `oldest` is then the revision after which the history is complete.
  bool EventsSince(uint64_t rv, std::vector<const StoreEvent*>& out, uint64_t& oldest) const;
  // Forgets all history: the next watch from an older revision gets 410 (fault injection).
  void CompactHistory() {
    history_.clear();
    complete_after_ = rv_;
  }

  // Listeners run synchronously after each change, in subscription order. A listener may
  // unsubscribe (itself or others) but must not change the store.
  using Listener = std::function<void(const StoreEvent&)>;
  uint64_t Subscribe(Listener listener);
  void Unsubscribe(uint64_t id);

  static std::string Key(std::string_view ns, std::string_view name);

 private:
  void Emit(StoreEvent event);

  size_t history_limit_;
  uint64_t rv_ = 1;
  uint64_t complete_after_ = 0;  // history holds every change with a revision above this
  std::map<const ResourceInfo*, std::map<std::string, ObjectPtr, std::less<>>> objects_;
  std::deque<StoreEvent> history_;
  uint64_t next_listener_ = 1;
  std::map<uint64_t, std::shared_ptr<Listener>> listeners_;
};

}  // namespace kiln::kubesim

#endif  // KILN_TESTS_KUBESIM_STORE_H_
