// WorkflowTemplates and ClusterWorkflowTemplates, part of the behaviour every Store
// implementation must have (store_test.cc holds the rest), run against each backend.
#include <catch2/catch.hpp>
#include <map>
#include <string>
#include <vector>

#include "tests/store/backends.h"

namespace kiln::store::testing {
namespace {

// The kinds, as the std::string the Store's calls take.
const std::string kNamespaced(kWorkflowTemplate);
const std::string kCluster(kClusterWorkflowTemplate);

TemplateRecord Template(const std::string& namespace_, const std::string& name,
                        int64_t created_at = 1000, std::string_view kind = kWorkflowTemplate) {
  TemplateRecord t;
  t.namespace_ = namespace_;
  t.name = name;
  t.kind = std::string(kind);
  t.spec = "apiVersion: argoproj.io/v1alpha1\nkind: " + t.kind + "\nmetadata:\n  name: " + name +
           "\nspec:\n  templates:\n  - name: main\n    container: {image: alpine}\n";
  t.uid = "uid-" + namespace_ + "-" + name;
  t.created_at = created_at;
  t.updated_at = created_at;
  t.labels = {{"app", name}, {"workflows.argoproj.io/creator", "kiln"}};
  return t;
}

TemplateRecord ClusterTemplate(const std::string& name, int64_t created_at = 1000) {
  return Template("", name, created_at, kClusterWorkflowTemplate);
}

std::vector<std::string> Names(const std::vector<TemplateRecord>& templates) {
  std::vector<std::string> names;
  for (const TemplateRecord& t : templates) names.push_back(t.namespace_ + "/" + t.name);
  return names;
}

std::vector<TemplateRecord> ListOrFail(Store& store, const std::string& kind,
                                       const std::string& namespace_) {
  auto listed = store.ListTemplates(kind, namespace_);
  if (!listed) FAIL(listed.error().ToString());
  return *listed;
}

STORE_TEST("store keeps templates and replaces them by kind, namespace and name") {
  auto backend = TestType::Make();
  if (!backend) return;
  auto store = OpenOrFail(*backend);
  TemplateRecord train = Template("ml", "train");
  TemplateRecord shared = ClusterTemplate("train");  // the same name, the other kind
  REQUIRE(store->PutTemplate(train));
  REQUIRE(store->PutTemplate(shared));

  auto got = store->GetTemplate(kNamespaced, "ml", "train");
  REQUIRE(got);
  REQUIRE(got->has_value());
  CHECK(**got == train);
  auto got_cluster = store->GetTemplate(kCluster, "", "train");
  REQUIRE(got_cluster);
  REQUIRE(got_cluster->has_value());
  CHECK(**got_cluster == shared);

  CHECK(store->GetTemplate(kNamespaced, "ml", "nope").value() == std::nullopt);
  CHECK(store->GetTemplate(kNamespaced, "other", "train").value() == std::nullopt);
  CHECK(store->GetTemplate(kNamespaced, "ml", "").value() == std::nullopt);

  SECTION("a put replaces the template but keeps when it was created") {
    TemplateRecord v2 = train;
    v2.spec += "# v2\n";
    v2.uid = "uid-2";
    v2.created_at = 5000;  // ignored: the stored template's creation time stays
    v2.updated_at = 6000;
    v2.labels = {{"app", "train"}, {"version", "2"}};
    REQUIRE(store->PutTemplate(v2));
    TemplateRecord want = v2;
    want.created_at = train.created_at;
    CHECK(store->GetTemplate(kNamespaced, "ml", "train").value() == want);
    CHECK(ListOrFail(*store, kNamespaced, "ml") == std::vector<TemplateRecord>{want});
    // The other kind's template of the same name is untouched.
    CHECK(store->GetTemplate(kCluster, "", "train").value() == shared);

    v2.labels.clear();
    REQUIRE(store->PutTemplate(v2));
    CHECK(store->GetTemplate(kNamespaced, "ml", "train").value()->labels.empty());
    CHECK(backend->RawInt("SELECT COUNT(*) FROM workflow_template_labels WHERE namespace = 'ml'") ==
          0);
  }

  SECTION("a deleted template is gone with its labels, and deleting it again is not found") {
    REQUIRE(store->DeleteTemplate(kNamespaced, "ml", "train"));
    CHECK(store->GetTemplate(kNamespaced, "ml", "train").value() == std::nullopt);
    CHECK(store->GetTemplate(kCluster, "", "train").value() == shared);
    CHECK(backend->RawInt("SELECT COUNT(*) FROM workflow_template_labels WHERE namespace = 'ml'") ==
          0);

    auto again = store->DeleteTemplate(kNamespaced, "ml", "train");
    REQUIRE_FALSE(again);
    CHECK(again.error().code() == Code::kNotFound);
    CHECK(again.error().message() == "WorkflowTemplate \"ml/train\" does not exist");
    auto missing = store->DeleteTemplate(kCluster, "", "nope");
    REQUIRE_FALSE(missing);
    CHECK(missing.error().code() == Code::kNotFound);
    CHECK(missing.error().message() == "ClusterWorkflowTemplate \"nope\" does not exist");

    REQUIRE(store->DeleteTemplate(kCluster, "", "train"));
    CHECK(ListOrFail(*store, kCluster, "").empty());
    // The key is free again.
    REQUIRE(store->PutTemplate(train));
    CHECK(store->GetTemplate(kNamespaced, "ml", "train").value() == train);
  }

  SECTION("templates survive reopening") {
    store.reset();
    auto reopened = OpenOrFail(*backend);
    CHECK(reopened->GetTemplate(kNamespaced, "ml", "train").value() == train);
    CHECK(reopened->GetTemplate(kCluster, "", "train").value() == shared);
  }
}

STORE_TEST("store lists templates by name, in one namespace or all of them") {
  auto backend = TestType::Make();
  if (!backend) return;
  auto store = OpenOrFail(*backend);
  // Names that PostgreSQL's default collations would order differently from bytes.
  for (const auto& [ns, name] :
       std::vector<std::pair<std::string, std::string>>{{"ml", "train"},
                                                        {"ml", "B-eval"},
                                                        {"ml", "a-prep"},
                                                        {"default", "train"},
                                                        {"default", "_hello"},
                                                        {"argo", "train"}}) {
    REQUIRE(store->PutTemplate(Template(ns, name)));
  }
  REQUIRE(store->PutTemplate(ClusterTemplate("zeta")));
  REQUIRE(store->PutTemplate(ClusterTemplate("Alpha")));

  CHECK(Names(ListOrFail(*store, kNamespaced, "ml")) ==
        std::vector<std::string>{"ml/B-eval", "ml/a-prep", "ml/train"});
  CHECK(Names(ListOrFail(*store, kNamespaced, "default")) ==
        std::vector<std::string>{"default/_hello", "default/train"});
  CHECK(ListOrFail(*store, kNamespaced, "nowhere").empty());
  CHECK(Names(ListOrFail(*store, kNamespaced, "")) ==
        std::vector<std::string>{"ml/B-eval", "default/_hello", "ml/a-prep", "argo/train",
                                 "default/train", "ml/train"});
  CHECK(Names(ListOrFail(*store, kCluster, "")) == std::vector<std::string>{"/Alpha", "/zeta"});
  // Listed templates carry their labels and everything else.
  CHECK(ListOrFail(*store, kNamespaced, "argo") ==
        std::vector<TemplateRecord>{Template("argo", "train")});
}

STORE_TEST("store refuses templates of an unknown kind or in the wrong scope") {
  auto backend = TestType::Make();
  if (!backend) return;
  auto store = OpenOrFail(*backend);
  auto refused = [](const auto& result) {
    REQUIRE_FALSE(result);
    CHECK(result.error().code() == Code::kInvalidArgument);
    return result.error().message();
  };
  TemplateRecord cron = Template("ml", "nightly", 1000, "CronWorkflow");
  CHECK(refused(store->PutTemplate(cron)) ==
        "template kind \"CronWorkflow\" is not WorkflowTemplate or ClusterWorkflowTemplate");
  CHECK(refused(store->PutTemplate(Template("", "x"))) == "a WorkflowTemplate needs a namespace");
  TemplateRecord namespaced_cluster = ClusterTemplate("x");
  namespaced_cluster.namespace_ = "ml";
  CHECK(refused(store->PutTemplate(namespaced_cluster)) ==
        "a ClusterWorkflowTemplate has no namespace, but namespace \"ml\" was given");
  CHECK(refused(store->PutTemplate(Template("ml", ""))) ==
        "cannot record a WorkflowTemplate with an empty name");
  TemplateRecord bad_label = Template("ml", "x");
  bad_label.labels[""] = "v";
  CHECK(refused(store->PutTemplate(bad_label)) ==
        "cannot record WorkflowTemplate \"ml/x\": a label key is empty");

  CHECK(refused(store->GetTemplate("CronWorkflow", "ml", "x")) ==
        "template kind \"CronWorkflow\" is not WorkflowTemplate or ClusterWorkflowTemplate");
  CHECK(refused(store->GetTemplate(kNamespaced, "", "x")) ==
        "a WorkflowTemplate needs a namespace");
  CHECK(refused(store->GetTemplate(kCluster, "ml", "x")) ==
        "a ClusterWorkflowTemplate has no namespace, but namespace \"ml\" was given");
  CHECK(refused(store->ListTemplates(kCluster, "ml")) ==
        "a ClusterWorkflowTemplate has no namespace, but namespace \"ml\" was given");
  CHECK(refused(store->ListTemplates("", "")) ==
        "template kind \"\" is not WorkflowTemplate or ClusterWorkflowTemplate");
  CHECK(refused(store->DeleteTemplate(kNamespaced, "", "x")) ==
        "a WorkflowTemplate needs a namespace");
  CHECK(ListOrFail(*store, kNamespaced, "").empty());
}

}  // namespace
}  // namespace kiln::store::testing
