// Typed, located reading of yaml-cpp nodes for the manifest parser. Private to dag/.
// Every getter checks the YAML type of the field, reports mismatches with file:line:col and the
// field path, and remembers which keys were read so Finish() can report unknown fields.
// Thread-safety: none; one parse runs on one thread.
#ifndef KILN_DAG_INTERNAL_YAML_READER_H_
#define KILN_DAG_INTERNAL_YAML_READER_H_

#include "dag/internal/yaml_tree.h"

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "dag/diagnostic.h"

namespace kiln::dag::internal {

enum class ScalarType { kNull, kBool, kInt, kFloat, kString };

// How a YAML 1.1 reader (Go's yaml, which Argo and Kubernetes use) types a scalar: quoted scalars
// are strings; plain ones may be null, bool (true/false/yes/no/on/off), int or float.
ScalarType ResolveScalar(const yaml::Node& node);

// "a string", "a number", "a boolean", "null", "a map", "a list".
std::string_view DescribeNode(const yaml::Node& node);

Location LocOf(const yaml::Node& node);

// Converts a YAML node to JSON with scalars typed as ResolveScalar says.
nlohmann::json ToJson(const yaml::Node& node);

struct ParseContext {
  std::string file;
  Diagnostics* diags = nullptr;
  bool strict = false;  // unknown fields are errors, not warnings
  // Where templated strings inside pass-through JSON were found (the manifest's
  // value_locations); may be null.
  std::unordered_map<std::string, Location>* value_locations = nullptr;

  void Error(const yaml::Node& at, const std::string& path, std::string message) const;
  void Error(Location at, const std::string& path, std::string message) const;
  void Unknown(const yaml::Node& key, const std::string& path, std::string message) const;
};

// A schema for Kubernetes objects that kiln passes through as JSON: field names and their types,
// enough to catch a list where a map belongs, a misspelt field or a bad quantity.
enum class JsonKind {
  kAny, kString, kAnyString, kBool, kInt, kIntOrString, kNumber, kQuantity,
  kObject, kArray, kStringMap, kQuantityMap,
};
struct JsonSchema;
struct JsonField {
  std::string_view name;
  JsonKind kind;
  const JsonSchema* object = nullptr;   // for kObject, or the elements of kArray when elem is kObject
  JsonKind elem = JsonKind::kAny;       // element kind of kArray
};
struct JsonSchema {
  std::string_view type_name;           // e.g. "Container", for messages
  std::vector<JsonField> fields;
  bool open = false;                    // unknown fields allowed (free-form objects)
};

// Checks `node` against `schema` (reporting under `path`) and returns it as JSON.
nlohmann::json CheckedJson(const ParseContext& ctx, const yaml::Node& node, const std::string& path,
                           JsonKind kind, const JsonSchema* schema, JsonKind elem = JsonKind::kAny);

class MapReader {
 public:
  // REQUIRES: node.IsMap().
  MapReader(const ParseContext& ctx, const yaml::Node& node, std::string path);

  const std::string& path() const { return path_; }
  std::string FieldPath(std::string_view key) const;
  const yaml::Node& node() const { return node_; }

  // Returns the field's node (and marks it known), or an undefined node when absent.
  yaml::Node Get(std::string_view key);
  bool Has(std::string_view key) const;
  void Ignore(std::string_view key) { known_.push_back(key); }

  // Each returns true when the field was present and well typed; absent fields leave *out alone.
  bool String(std::string_view key, std::string* out, Location* loc = nullptr);
  // A string, number or boolean, kept as its text (Argo's AnyString / intstr).
  bool AnyString(std::string_view key, std::optional<std::string>* out, Location* loc = nullptr);
  bool Bool(std::string_view key, bool* out);
  bool Int(std::string_view key, std::optional<int64_t>* out);
  bool StringList(std::string_view key, std::vector<std::string>* out, Location* loc = nullptr);
  bool StringMap(std::string_view key, std::map<std::string, std::string>* out);
  bool Json(std::string_view key, nlohmann::json* out, JsonKind kind,
            const JsonSchema* schema = nullptr, JsonKind elem = JsonKind::kAny);
  // Returns the node if it is a map, reporting "expected a map" otherwise.
  std::optional<yaml::Node> Map(std::string_view key);
  // Returns the node if it is a list, reporting "expected a list" otherwise.
  std::optional<yaml::Node> List(std::string_view key);

  // Reports every key that no getter asked for, with a "did you mean" where one is close.
  void Finish();

 private:
  const ParseContext& ctx_;
  yaml::Node node_;
  std::string path_;
  std::vector<std::string_view> known_;
  // The map's entries, read once: yaml-cpp's iteration allocates, and a field is looked up often.
  std::vector<std::pair<std::string_view, yaml::Node>> entries_;
  std::vector<yaml::Node> bad_keys_;
};

// Text of a scalar node as the user wrote it.
std::string ScalarText(const yaml::Node& node);

}  // namespace kiln::dag::internal

#endif  // KILN_DAG_INTERNAL_YAML_READER_H_
