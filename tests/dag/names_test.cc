#include "dag/names.h"

#include <catch2/catch.hpp>

namespace kiln::dag {
namespace {

constexpr char kSubdomainRule[] =
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com')";

}  // namespace

TEST_CASE("ValidateDns1123Subdomain follows Kubernetes", "[dag]") {
  CHECK_FALSE(ValidateDns1123Subdomain("my-wf"));
  CHECK_FALSE(ValidateDns1123Subdomain("example.com"));
  CHECK_FALSE(ValidateDns1123Subdomain("0abc"));
  CHECK_FALSE(ValidateDns1123Subdomain(std::string(253, 'a')));
  CHECK(ValidateDns1123Subdomain("My_WF") ==
        std::string("invalid name \"My_WF\": ") + kSubdomainRule);
  for (std::string_view bad : {"", "-a", "a-", "a..b", ".a", "a.", "a.-b", "A"}) {
    CAPTURE(bad);
    CHECK(ValidateDns1123Subdomain(bad).has_value());
  }
  CHECK(ValidateDns1123Subdomain(std::string(254, 'a')) ==
        "invalid name \"" + std::string(254, 'a') +
            "\": must be no more than 253 characters (it has 254)");
}

TEST_CASE("ValidateDns1123Label follows Kubernetes", "[dag]") {
  CHECK_FALSE(ValidateDns1123Label("my-name"));
  CHECK_FALSE(ValidateDns1123Label("123-abc"));
  CHECK_FALSE(ValidateDns1123Label(std::string(63, 'a')));
  CHECK(ValidateDns1123Label("a.b") ==
        "invalid name \"a.b\": a lowercase RFC 1123 label must consist of lower case alphanumeric "
        "characters or '-', and must start and end with an alphanumeric character (e.g. "
        "'my-name', or '123-abc')");
  CHECK(ValidateDns1123Label(std::string(64, 'a'))
            .value()
            .ends_with("must be no more than 63 characters (it has 64)"));
  CHECK(ValidateDns1123Label("").has_value());
}

TEST_CASE("ValidateArgoFieldName follows Argo's template and task name rule", "[dag]") {
  CHECK_FALSE(ValidateArgoFieldName("Train-Model2"));
  CHECK_FALSE(ValidateArgoFieldName("a-"));  // Argo allows a trailing '-'
  CHECK_FALSE(ValidateArgoFieldName("123"));
  CHECK_FALSE(ValidateArgoFieldName(std::string(128, 'a')));
  CHECK(ValidateArgoFieldName("train_model") ==
        "invalid name \"train_model\": name must consist of alpha-numeric characters or '-', and "
        "must start with an alpha-numeric character (e.g. 'My-name1-2', or '123-NAME')");
  CHECK(ValidateArgoFieldName("-a").has_value());
  CHECK(ValidateArgoFieldName("").has_value());
  CHECK(ValidateArgoFieldName("a.b").has_value());
  CHECK(ValidateArgoFieldName(std::string(129, 'a'))
            .value()
            .ends_with("must be no more than 128 characters (it has 129)"));
}

TEST_CASE("ValidateParamOrArtifactName follows Argo", "[dag]") {
  CHECK_FALSE(ValidateParamOrArtifactName("my_param_1"));
  CHECK_FALSE(ValidateParamOrArtifactName("MY-PARAM-1"));
  CHECK_FALSE(ValidateParamOrArtifactName("-_-"));
  CHECK(ValidateParamOrArtifactName("my.param") ==
        "invalid name \"my.param\": a parameter or artifact name must consist of alpha-numeric "
        "characters, '_' or '-' (e.g. 'my_param_1', or 'MY-PARAM-1')");
  CHECK(ValidateParamOrArtifactName("").has_value());
  CHECK(ValidateParamOrArtifactName("a b").has_value());
}

TEST_CASE("ValidateGenerateName accepts a subdomain prefix ending in '-'", "[dag]") {
  CHECK_FALSE(ValidateGenerateName("hello-world-"));
  CHECK_FALSE(ValidateGenerateName("hello"));
  CHECK_FALSE(ValidateGenerateName(std::string(247, 'a') + "-"));
  CHECK(ValidateGenerateName("Hello-") ==
        std::string("invalid generateName \"Hello-\": ") + kSubdomainRule);
  CHECK(ValidateGenerateName("a--").has_value() == false);
  CHECK(ValidateGenerateName("-").has_value());
  CHECK(ValidateGenerateName("a.-").has_value());
  CHECK(ValidateGenerateName("a.").has_value());
  CHECK(ValidateGenerateName("").has_value());
  CHECK(ValidateGenerateName(std::string(249, 'a'))
            .value()
            .ends_with("must be no more than 248 characters (it has 249)"));
}

TEST_CASE("ValidateLabelKey and ValidateLabelValue follow Kubernetes", "[dag]") {
  CHECK_FALSE(ValidateLabelKey("app"));
  CHECK_FALSE(ValidateLabelKey("app.kubernetes.io/name"));
  CHECK_FALSE(ValidateLabelKey("workflows.argoproj.io/My_Label.1"));
  CHECK(ValidateLabelKey("-app") ==
        "invalid label key \"-app\": name part must consist of alphanumeric characters, '-', '_' "
        "or '.', and must start and end with an alphanumeric character (e.g. 'MyName', or "
        "'my.name', or '123-abc')");
  CHECK(ValidateLabelKey("/app") == "invalid label key \"/app\": prefix part must be non-empty");
  CHECK(ValidateLabelKey("a/") == "invalid label key \"a/\": name part must be non-empty");
  CHECK(ValidateLabelKey("Example.com/app") ==
        std::string("invalid label key \"Example.com/app\": prefix part ") + kSubdomainRule);
  CHECK(ValidateLabelKey("a/b/c").value().starts_with("invalid label key \"a/b/c\": a qualified"));
  CHECK(ValidateLabelKey(std::string(64, 'a'))
            .value()
            .ends_with("name part must be no more than 63 characters (it has 64)"));

  CHECK_FALSE(ValidateLabelValue(""));
  CHECK_FALSE(ValidateLabelValue("my_value"));
  CHECK_FALSE(ValidateLabelValue("12345"));
  CHECK(ValidateLabelValue("v1.") ==
        "invalid label value \"v1.\": a valid label must be an empty string or consist of "
        "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
        "character (e.g. 'MyValue', or 'my_value', or '12345')");
  CHECK(ValidateLabelValue("a b").has_value());
  CHECK(ValidateLabelValue(std::string(64, 'a'))
            .value()
            .ends_with("must be no more than 63 characters (it has 64)"));
}

}  // namespace kiln::dag
