#include "executor/accelerators.h"

#include <fstream>
#include <sstream>

#include "base/strings.h"
#include "dag/diagnostic.h"
#include "dag/duration.h"
#include "dag/internal/yaml_tree.h"

namespace kiln::executor {

namespace {

using nlohmann::json;

json In(std::string key, std::vector<std::string> values) {
  return {{"key", std::move(key)}, {"operator", "In"}, {"values", std::move(values)}};
}

json Term(std::vector<json> expressions) { return {{"matchExpressions", std::move(expressions)}}; }

// The label values below are those the projects document (NVIDIA GPU feature discovery's
// product names, GKE's accelerator names, Karpenter's instance-gpu-name and -memory in MiB);
// a cluster with other labels configures its own (AcceleratorProfiles::Load).
struct Builtin {
  const char* name;
  std::vector<std::string> gfd;
  std::vector<std::string> gke;
  const char* karpenter_name;
  const char* karpenter_memory;  // "" when the name alone identifies the kind
};

const std::vector<Builtin>& Builtins() {
  static const std::vector<Builtin> builtins = {
      {"a100-80gb", {"NVIDIA-A100-SXM4-80GB", "NVIDIA-A100-80GB-PCIe"}, {"nvidia-a100-80gb"}, "a100", "81920"},
      {"a100-40gb", {"NVIDIA-A100-SXM4-40GB", "NVIDIA-A100-PCIE-40GB"}, {"nvidia-tesla-a100"}, "a100", "40960"},
      {"h100-80gb", {"NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-PCIe"}, {"nvidia-h100-80gb"}, "h100", ""},
      {"l4", {"NVIDIA-L4"}, {"nvidia-l4"}, "l4", ""},
      {"a10g", {"NVIDIA-A10G"}, {}, "a10g", ""},
      {"t4", {"Tesla-T4"}, {"nvidia-tesla-t4"}, "t4", ""},
      {"v100", {"Tesla-V100-SXM2-16GB", "Tesla-V100-SXM2-32GB", "Tesla-V100-PCIE-16GB"}, {"nvidia-tesla-v100"}, "v100",
       ""},
  };
  return builtins;
}

AcceleratorProfile FromBuiltin(const Builtin& b) {
  AcceleratorProfile p;
  p.name = b.name;
  p.terms.push_back(Term({In("nvidia.com/gpu.product", b.gfd)}));
  if (!b.gke.empty()) p.terms.push_back(Term({In("cloud.google.com/gke-accelerator", b.gke)}));
  std::vector<json> karpenter = {In("karpenter.k8s.aws/instance-gpu-name", {b.karpenter_name})};
  if (*b.karpenter_memory) karpenter.push_back(In("karpenter.k8s.aws/instance-gpu-memory", {b.karpenter_memory}));
  p.terms.push_back(Term(std::move(karpenter)));
  return p;
}

// Located errors for Load.
struct Reader {
  std::string path;
  std::string Where(const dag::yaml::Node& n) const {
    dag::yaml::Mark m = n.Mark();
    return path + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
  }
  std::unexpected<Error> Fail(const dag::yaml::Node& n, const std::string& what) const {
    return MakeError(Code::kInvalidArgument, Where(n) + ": " + what);
  }

  // A label set: {label: value | [values]} -> a node selector term.
  Result<json> LabelSet(const std::string& profile, const dag::yaml::Node& set) const {
    const std::string field = "accelerators." + profile;
    if (!set.IsMap() || set.size() == 0) {
      return Fail(set, field + ": expected a map of node labels to a value or a list of values (one label set)");
    }
    std::vector<json> expressions;
    for (auto it = set.begin(); it != set.end(); ++it) {
      std::string key(it->first.Scalar());
      const dag::yaml::Node v = it->second;
      std::vector<std::string> values;
      if (v.IsScalar()) {
        values.emplace_back(v.Scalar());
      } else if (v.IsSequence() && v.size() > 0) {
        for (const auto& e : v) {
          if (!e.IsScalar()) return Fail(e, field + "." + key + ": expected a label value (a string)");
          values.emplace_back(e.Scalar());
        }
      } else {
        return Fail(v, field + "." + key + ": expected a label value or a non-empty list of values");
      }
      expressions.push_back(In(key, values));
    }
    return Term(std::move(expressions));
  }

  // cpuOnlySteps: node selector requirements.
  Result<json> Requirements(const dag::yaml::Node& list) const {
    static const std::vector<std::string_view> kOps = {"In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"};
    if (!list.IsSequence()) {
      return Fail(list, "cpuOnlySteps: expected a list of node selector requirements ({key, operator, values})");
    }
    json out = json::array();
    for (const auto& r : list) {
      if (!r.IsMap()) return Fail(r, "cpuOnlySteps: expected {key, operator, values}");
      json req = json::object();
      for (auto it = r.begin(); it != r.end(); ++it) {
        std::string k(it->first.Scalar());
        const dag::yaml::Node v = it->second;
        if (k == "key" || k == "operator") {
          if (!v.IsScalar()) return Fail(v, "cpuOnlySteps." + k + ": expected a string");
          req[k] = std::string(v.Scalar());
        } else if (k == "values") {
          if (!v.IsSequence()) return Fail(v, "cpuOnlySteps.values: expected a list of strings");
          json values = json::array();
          for (const auto& e : v) values.push_back(std::string(e.Scalar()));
          req[k] = std::move(values);
        } else {
          return Fail(it->first, "cpuOnlySteps: unknown field " + Quote(k) + "; the fields are key, operator and values");
        }
      }
      if (!req.contains("key")) return Fail(r, "cpuOnlySteps: a requirement needs a key");
      std::string op = req.value("operator", "");
      bool known = false;
      for (std::string_view o : kOps) known = known || o == op;
      if (!known) {
        return Fail(r, "cpuOnlySteps: operator " + Quote(op) + " is not one of In, NotIn, Exists, DoesNotExist, Gt, Lt");
      }
      bool needs_values = op == "In" || op == "NotIn" || op == "Gt" || op == "Lt";
      if (needs_values != (req.contains("values") && !req["values"].empty())) {
        return Fail(r, "cpuOnlySteps: operator " + op + (needs_values ? " needs values" : " takes no values"));
      }
      out.push_back(std::move(req));
    }
    return out;
  }
};

}  // namespace

AcceleratorProfiles::AcceleratorProfiles() {
  for (const Builtin& b : Builtins()) profiles_[b.name] = FromBuiltin(b);
}

Result<AcceleratorProfiles> AcceleratorProfiles::Load(const std::string& path) {
  AcceleratorProfiles out;
  std::ifstream in(path, std::ios::binary);
  if (!in) return MakeError(Code::kNotFound, "cannot read the accelerator profiles file " + path);
  std::stringstream buf;
  buf << in.rdbuf();
  const std::string text = buf.str();
  dag::Diagnostics diags;
  auto tree = dag::yaml::Tree::Parse(path, text, dag::yaml::BuildOptions{}, diags);
  for (const dag::Diagnostic& d : diags.items()) {
    if (d.severity == dag::Severity::kError) return MakeError(Code::kInvalidArgument, d.ToString());
  }
  if (tree == nullptr || tree->documents().empty() || tree->documents().front().IsNull()) return out;
  const dag::yaml::Node& doc = tree->documents().front();
  Reader r{path};
  if (!doc.IsMap()) return r.Fail(doc, "expected a map with accelerators (and optionally cpuOnlySteps)");
  static const std::vector<std::string_view> kKeys = {"accelerators", "cpuOnlySteps"};
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    std::string key(it->first.Scalar());
    const dag::yaml::Node value = it->second;
    if (key == "cpuOnlySteps") {
      auto reqs = r.Requirements(value);
      if (!reqs) return std::unexpected(reqs.error());
      out.cpu_only_ = std::move(*reqs);
    } else if (key == "accelerators") {
      if (!value.IsMap()) return r.Fail(value, "accelerators: expected a map of profile names to lists of label sets");
      for (auto p = value.begin(); p != value.end(); ++p) {
        std::string name(p->first.Scalar());
        const dag::yaml::Node sets = p->second;
        if (!sets.IsSequence() || sets.size() == 0) {
          return r.Fail(sets, "accelerators." + name +
                                  ": expected a list of label sets, e.g. [{nvidia.com/gpu.product: NVIDIA-L4}]");
        }
        AcceleratorProfile profile;
        profile.name = name;
        for (const auto& set : sets) {
          auto term = r.LabelSet(name, set);
          if (!term) return std::unexpected(term.error());
          profile.terms.push_back(std::move(*term));
        }
        out.profiles_[name] = std::move(profile);
      }
    } else {
      return r.Fail(it->first, "unknown key " + Quote(key) + DidYouMean(key, kKeys) +
                                   "; the keys are accelerators and cpuOnlySteps");
    }
  }
  return out;
}

const AcceleratorProfiles& BuiltinAccelerators() {
  static const AcceleratorProfiles builtin;
  return builtin;
}

const AcceleratorProfile* AcceleratorProfiles::Find(std::string_view name) const {
  auto it = profiles_.find(name);
  return it == profiles_.end() ? nullptr : &it->second;
}

std::vector<std::string> AcceleratorProfiles::Names() const {
  std::vector<std::string> names;
  for (const auto& [name, p] : profiles_) names.push_back(name);
  return names;
}

std::vector<std::string> ParseAcceleratorList(std::string_view value) {
  std::vector<std::string> out;
  std::string current;
  auto flush = [&] {
    std::string_view t = Trim(current);
    while (!t.empty() && (t.front() == '"' || t.front() == '\'')) t.remove_prefix(1);
    while (!t.empty() && (t.back() == '"' || t.back() == '\'')) t.remove_suffix(1);
    if (!t.empty()) out.emplace_back(t);
    current.clear();
  };
  for (char c : value) {
    if (c == '[' || c == ']') continue;
    if (c == ',' || c == ' ' || c == '\n' || c == '\t') {
      flush();
    } else {
      current += c;
    }
  }
  flush();
  return out;
}

void RequireNodeTerms(json& pod_spec, const json& terms) {
  if (!terms.is_array() || terms.empty()) return;
  json& required = pod_spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
  json own = required.is_object() && required.contains("nodeSelectorTerms") ? required["nodeSelectorTerms"]
                                                                             : json::array();
  if (!own.is_array() || own.empty()) {
    required["nodeSelectorTerms"] = terms;
    return;
  }
  json joined = json::array();
  for (const json& o : own) {
    for (const json& t : terms) {
      json term = o.is_object() ? o : json::object();
      json& exprs = term["matchExpressions"];
      if (!exprs.is_array()) exprs = json::array();
      for (const json& e : t.value("matchExpressions", json::array())) exprs.push_back(e);
      joined.push_back(std::move(term));
    }
  }
  required["nodeSelectorTerms"] = std::move(joined);
}

Result<Placement> PlacementOf(const json& annotations, const AcceleratorProfiles& profiles) {
  Placement out;
  if (!annotations.is_object()) return out;
  if (auto it = annotations.find(kAnnotationAccelerator); it != annotations.end() && it->is_string()) {
    out.accelerators = ParseAcceleratorList(it->get<std::string>());
    std::vector<std::string> names = profiles.Names();
    std::vector<std::string_view> known(names.begin(), names.end());
    for (const std::string& a : out.accelerators) {
      if (profiles.Find(a)) continue;
      std::string list;
      for (const std::string& n : names) list += (list.empty() ? "" : ", ") + n;
      return MakeError(Code::kInvalidArgument,
                       "annotation " + std::string(kAnnotationAccelerator) + ": unknown accelerator profile " +
                           Quote(a) + DidYouMean(a, known) + "; the profiles are " + list +
                           " (add one in the accelerators file, --accelerators)");
    }
  }
  if (auto it = annotations.find(kAnnotationPendingTimeout); it != annotations.end() && it->is_string()) {
    auto d = dag::ParseGoDuration(it->get<std::string>());
    if (!d || d->count() <= 0) {
      return MakeError(Code::kInvalidArgument, "annotation " + std::string(kAnnotationPendingTimeout) + ": " +
                                                   Quote(it->get<std::string>()) +
                                                   " is not a positive duration (e.g. 90s, 5m, 1h30m)");
    }
    out.pending_timeout = *d;
  }
  return out;
}

}  // namespace kiln::executor
