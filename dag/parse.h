// Parsing manifest files into the typed spec (dag/spec.h).
// Thread-safety: the functions are reentrant; each call owns its inputs.
#ifndef KILN_DAG_PARSE_H_
#define KILN_DAG_PARSE_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "dag/diagnostic.h"
#include "dag/spec.h"

namespace kiln::dag {

struct ParseOptions {
  bool strict = false;                    // unknown fields are errors instead of warnings
  size_t max_file_bytes = 8u << 20;       // larger files are refused before parsing
  size_t max_depth = 100;                 // YAML nesting deeper than this is refused
  size_t max_nodes = 4'000'000;           // YAML nodes visited, aliases expanded (billion laughs)
};

// Parses every document of `text` (the contents of `file`). Problems go to `diags` with
// file:line:column and field path; documents that parsed are returned even when some of their
// fields were wrong, so validation can report more. Documents of other kinds (a ConfigMap in a
// multi-document file) get a note and are skipped. Never throws.
std::vector<Manifest> ParseManifests(std::string_view file, const std::string& text,
                                     const ParseOptions& options, Diagnostics& diags);

// Reads `path` (refusing files over options.max_file_bytes) and parses it.
std::vector<Manifest> LoadManifestFile(const std::string& path, const ParseOptions& options,
                                       Diagnostics& diags);

// The first document of YAML (or JSON) `text` as JSON, scalars typed as Kubernetes' YAML reader
// types them. Errors: kInvalidArgument with "<name>:line:column: what is wrong".
Result<nlohmann::json> YamlToJson(std::string_view name, std::string_view text);

}  // namespace kiln::dag

#endif  // KILN_DAG_PARSE_H_
