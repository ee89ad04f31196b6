#include "dag/names.h"

#include "base/strings.h"

namespace kiln::dag {
namespace {

constexpr std::string_view kSubdomainRule =
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com')";
constexpr std::string_view kLabelRule =
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc')";
constexpr std::string_view kArgoFieldRule =
    "name must consist of alpha-numeric characters or '-', and must start with an alpha-numeric "
    "character (e.g. 'My-name1-2', or '123-NAME')";
constexpr std::string_view kParamRule =
    "a parameter or artifact name must consist of alpha-numeric characters, '_' or '-' (e.g. "
    "'my_param_1', or 'MY-PARAM-1')";
constexpr std::string_view kQualifiedNameRule =
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName', or 'my.name', or '123-abc')";
constexpr std::string_view kLabelValueRule =
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue', or 'my_value', "
    "or '12345')";

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsAlnum(char c) { return IsLowerAlnum(c) || (c >= 'A' && c <= 'Z'); }

std::string Message(std::string_view what, std::string_view value, std::string_view rule) {
  return "invalid " + std::string(what) + " " + Quote(value) + ": " + std::string(rule);
}

std::string TooLong(std::string_view what, std::string_view value, size_t max) {
  return "invalid " + std::string(what) + " " + Quote(value) + ": must be no more than " +
         std::to_string(max) + " characters (it has " + std::to_string(value.size()) + ")";
}

// [a-z0-9]([-a-z0-9]*[a-z0-9])?
bool IsLabel(std::string_view s) {
  if (s.empty() || !IsLowerAlnum(s.front()) || !IsLowerAlnum(s.back())) return false;
  for (char c : s) {
    if (!IsLowerAlnum(c) && c != '-') return false;
  }
  return true;
}

// Labels joined by '.'.
bool IsSubdomain(std::string_view s) {
  while (true) {
    size_t dot = s.find('.');
    if (!IsLabel(s.substr(0, dot))) return false;
    if (dot == std::string_view::npos) return true;
    s.remove_prefix(dot + 1);
  }
}

// ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]
bool IsQualifiedNamePart(std::string_view s) {
  if (s.empty() || !IsAlnum(s.front()) || !IsAlnum(s.back())) return false;
  for (char c : s) {
    if (!IsAlnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

}  // namespace

std::optional<std::string> ValidateDns1123Subdomain(std::string_view name) {
  if (name.size() > kMaxDns1123SubdomainLength) {
    return TooLong("name", name, kMaxDns1123SubdomainLength);
  }
  if (!IsSubdomain(name)) return Message("name", name, kSubdomainRule);
  return std::nullopt;
}

std::optional<std::string> ValidateDns1123Label(std::string_view name) {
  if (name.size() > kMaxDns1123LabelLength) return TooLong("name", name, kMaxDns1123LabelLength);
  if (!IsLabel(name)) return Message("name", name, kLabelRule);
  return std::nullopt;
}

std::optional<std::string> ValidateArgoFieldName(std::string_view name) {
  if (name.size() > kMaxArgoFieldNameLength) {
    return TooLong("name", name, kMaxArgoFieldNameLength);
  }
  bool ok = !name.empty() && IsAlnum(name.front());
  for (char c : name) ok = ok && (IsAlnum(c) || c == '-');
  if (!ok) return Message("name", name, kArgoFieldRule);
  return std::nullopt;
}

std::optional<std::string> ValidateParamOrArtifactName(std::string_view name) {
  bool ok = !name.empty();
  for (char c : name) ok = ok && (IsAlnum(c) || c == '-' || c == '_');
  if (!ok) return Message("name", name, kParamRule);
  return std::nullopt;
}

std::optional<std::string> ValidateGenerateName(std::string_view prefix) {
  if (prefix.size() > kMaxGenerateNameLength) {
    return TooLong("generateName", prefix, kMaxGenerateNameLength);
  }
  // Kubernetes' own check: a trailing "x-" is masked to "a", then the rest must be a subdomain.
  std::string masked(prefix);
  if (masked.size() > 1 && masked.back() == '-') masked.replace(masked.size() - 2, 2, "a");
  // That mask lets "a.-" through, so also check the names it will generate: the prefix followed
  // by random lower-case alphanumerics.
  if (!IsSubdomain(masked) || !IsSubdomain(std::string(prefix) + "a")) {
    return Message("generateName", prefix, kSubdomainRule);
  }
  return std::nullopt;
}

std::optional<std::string> ValidateLabelKey(std::string_view key) {
  constexpr std::string_view kWhat = "label key";
  std::string_view name = key;
  size_t slash = key.find('/');
  if (slash != std::string_view::npos) {
    std::string_view prefix = key.substr(0, slash);
    name = key.substr(slash + 1);
    if (name.find('/') != std::string_view::npos) {
      return Message(kWhat, key,
                     "a qualified name is a name with an optional DNS subdomain prefix and '/' "
                     "(e.g. 'example.com/MyName'), and may hold only one '/'");
    }
    if (prefix.empty()) return Message(kWhat, key, "prefix part must be non-empty");
    if (prefix.size() > kMaxDns1123SubdomainLength) {
      return Message(kWhat, key,
                     "prefix part must be no more than " +
                         std::to_string(kMaxDns1123SubdomainLength) + " characters");
    }
    if (!IsSubdomain(prefix)) {
      return Message(kWhat, key, "prefix part " + std::string(kSubdomainRule));
    }
  }
  if (name.empty()) return Message(kWhat, key, "name part must be non-empty");
  if (name.size() > kMaxLabelLength) {
    return Message(kWhat, key,
                   "name part must be no more than " + std::to_string(kMaxLabelLength) +
                       " characters (it has " + std::to_string(name.size()) + ")");
  }
  if (!IsQualifiedNamePart(name)) return Message(kWhat, key, kQualifiedNameRule);
  return std::nullopt;
}

std::optional<std::string> ValidateLabelValue(std::string_view value) {
  if (value.size() > kMaxLabelLength) return TooLong("label value", value, kMaxLabelLength);
  if (!value.empty() && !IsQualifiedNamePart(value)) {
    return Message("label value", value, kLabelValueRule);
  }
  return std::nullopt;
}

}  // namespace kiln::dag
