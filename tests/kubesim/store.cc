#include "tests/kubesim/store.h"

namespace kiln::kubesim {

std::string_view EventTypeName(EventType type) {
  switch (type) {
    case EventType::kAdded: return "ADDED";
    case EventType::kModified: return "MODIFIED";
    case EventType::kDeleted: return "DELETED";
  }
  return "";
}

std::string Store::Key(std::string_view ns, std::string_view name) {
  std::string key(ns);
  key += '/';
  key += name;
  return key;
}

ObjectPtr Store::Get(const ResourceInfo& r, std::string_view ns, std::string_view name) const {
  auto by_resource = objects_.find(&r);
  if (by_resource == objects_.end()) return nullptr;
  auto it = by_resource->second.find(Key(r.namespaced ? ns : "", name));
  return it == by_resource->second.end() ? nullptr : it->second;
}

std::vector<ObjectPtr> Store::List(const ResourceInfo& r, std::string_view ns,
                                   std::string_view after) const {
  std::vector<ObjectPtr> out;
  auto by_resource = objects_.find(&r);
  if (by_resource == objects_.end()) return out;
  const auto& objects = by_resource->second;
  std::string prefix = r.namespaced && !ns.empty() ? std::string(ns) + "/" : "";
  auto it = objects.lower_bound(prefix);
  if (!after.empty() && std::string_view(after) >= prefix) it = objects.upper_bound(after);
  for (; it != objects.end(); ++it) {
    if (!prefix.empty() && !it->first.starts_with(prefix)) break;
    out.push_back(it->second);
  }
  return out;
}

size_t Store::Count(const ResourceInfo& r) const {
  auto by_resource = objects_.find(&r);
  return by_resource == objects_.end() ? 0 : by_resource->second.size();
}

ObjectPtr Store::Put(const ResourceInfo& r, json object) {
  const json& meta = object["metadata"];
  std::string key = Key(r.namespaced ? meta.value("namespace", "") : "", meta.value("name", ""));
  ++rv_;
  object["metadata"]["resourceVersion"] = std::to_string(rv_);
  auto stored = std::make_shared<const json>(std::move(object));
  auto& slot = objects_[&r][key];
  ObjectPtr old = std::move(slot);
  slot = stored;
  Emit({old ? EventType::kModified : EventType::kAdded, &r, rv_, stored, std::move(old)});
  return stored;
}

ObjectPtr Store::Remove(const ResourceInfo& r, std::string_view ns, std::string_view name,
                        std::optional<json> last_state) {
  auto by_resource = objects_.find(&r);
  if (by_resource == objects_.end()) return nullptr;
  auto it = by_resource->second.find(Key(r.namespaced ? ns : "", name));
  if (it == by_resource->second.end()) return nullptr;
  ObjectPtr old = std::move(it->second);
  by_resource->second.erase(it);
  ++rv_;
  json last = last_state ? std::move(*last_state) : *old;
  last["metadata"]["resourceVersion"] = std::to_string(rv_);
  auto stored = std::make_shared<const json>(std::move(last));
  Emit({EventType::kDeleted, &r, rv_, stored, std::move(old)});
  return stored;
}

bool Store::EventsSince(uint64_t rv, std::vector<const StoreEvent*>& out, uint64_t& oldest) const {
  if (rv < complete_after_) {
    oldest = complete_after_;
    return false;
  }
  for (const StoreEvent& e : history_) {
    if (e.rv > rv) out.push_back(&e);
  }
  return true;
}

uint64_t Store::Subscribe(Listener listener) {
  uint64_t id = next_listener_++;
  listeners_[id] = std::make_shared<Listener>(std::move(listener));
  return id;
}

void Store::Unsubscribe(uint64_t id) { listeners_.erase(id); }

void Store::Emit(StoreEvent event) {
  history_.push_back(event);
  while (history_.size() > history_limit_) {
    complete_after_ = history_.front().rv;
    history_.pop_front();
  }
  // Copy: listeners may unsubscribe while we iterate.
  std::vector<std::pair<uint64_t, std::shared_ptr<Listener>>> snapshot(listeners_.begin(),
                                                                       listeners_.end());
  for (auto& [id, listener] : snapshot) {
    if (listeners_.count(id)) (*listener)(event);
  }
}

}  // namespace kiln::kubesim
