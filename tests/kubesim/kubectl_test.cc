// kubesim driven by kubectl, a client nobody here wrote.
#include <catch2/catch.hpp>

#include "tests/kubesim/test_util.h"

#if KUBESIM_HAVE_KUBECTL
namespace kiln::kubesim::testing {
namespace {

constexpr const char* kJobYaml = R"(apiVersion: batch/v1
kind: Job
metadata:
  name: hello
  labels: {revision: "1"}
spec:
  backoffLimit: 0
  template:
    metadata:
      annotations:
        kubesim.kiln.dev/duration: 1s
        kubesim.kiln.dev/logs: "hello from kubesim"
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: busybox:1.36
        command: [echo, hello]
)";

TEST_CASE("kubectl lists the cluster's nodes, jobs and pods", "[kubesim][kubectl]") {
  Kubesim sim("mixed-gpu.yaml");
  CommandResult r = sim.Kubectl({"get", "nodes,jobs,pods"});
  INFO(r.output << sim.log());
  REQUIRE(r.exit_code == 0);
  CHECK(r.output.find("node/a100-1") != std::string::npos);
  CHECK(r.output.find("node/t4-1") != std::string::npos);
  CHECK(r.output.find("Ready") != std::string::npos);
  CHECK(r.output.find("v1.32.0-kubesim") != std::string::npos);
}

TEST_CASE("kubectl reports Status errors as the apiserver words them", "[kubesim][kubectl]") {
  Kubesim sim("cpu-only.yaml");
  CommandResult r = sim.Kubectl({"get", "job", "nope"});
  CHECK(r.exit_code == 1);
  CHECK(r.output.find("Error from server (NotFound): jobs.batch \"nope\" not found") != std::string::npos);

  std::string text = ReadFile(sim.kubeconfig());
  text.replace(text.find("token: ") + 7, 4, "xxxx");
  WriteFile(sim.dir() / "bad-kubeconfig", text);
  r = Run({KUBECTL_PROGRAM, "--kubeconfig", sim.dir() / "bad-kubeconfig", "--cache-dir",
           sim.dir() / "cache2", "get", "pods"},
          sim.dir().path());
  CHECK(r.exit_code == 1);
  CHECK(r.output.find("error: You must be logged in to the server (the server has asked for the client to provide credentials)") != std::string::npos);
}

TEST_CASE("kubectl applies a Job, watches its pod succeed, reads logs, describes, deletes",
          "[kubesim][kubectl]") {
  Kubesim sim("cpu-only.yaml");
  WriteFile(sim.dir() / "job.yaml", kJobYaml);
  // kubectl validates (strict by default) with the /openapi/v3 documents kubesim serves.
  CommandResult r = sim.Kubectl({"apply", "-f", sim.dir() / "job.yaml"});
  INFO(r.output << sim.log());
  REQUIRE(r.exit_code == 0);
  CHECK(r.output == "job.batch/hello created\n");

  int fd = -1;
  pid_t watcher = Spawn({KUBECTL_PROGRAM, "--kubeconfig", sim.kubeconfig(), "--cache-dir",
                         sim.dir() / "kube-cache", "get", "pods", "-w"},
                        "", &fd);
  std::string seen;
  try {
    seen = ReadUntil(fd, "Completed", std::chrono::seconds(20));
  } catch (const std::exception& e) {
    FAIL(e.what());
  }
  ::kill(watcher, SIGTERM);
  ::waitpid(watcher, nullptr, 0);
  ::close(fd);
  CHECK(seen.find("NAME") != std::string::npos);
  CHECK(seen.find("hello-") != std::string::npos);

  std::string updated = kJobYaml;
  updated.replace(updated.find("revision: \"1\""), 13, "revision: \"2\"");
  WriteFile(sim.dir() / "job.yaml", updated);
  r = sim.Kubectl({"apply", "-f", sim.dir() / "job.yaml"});
  CHECK(r.exit_code == 0);
  CHECK(r.output == "job.batch/hello configured\n");
  r = sim.Kubectl({"get", "job", "hello", "-o", "jsonpath={.metadata.labels.revision} {.status.conditions[*].type}"});
  CHECK(r.output == "2 SuccessCriteriaMet Complete");

  r = sim.Kubectl({"get", "jobs"});
  CHECK(r.output.find("Complete") != std::string::npos);
  CHECK(r.output.find("1/1") != std::string::npos);

  r = sim.Kubectl({"logs", "job/hello"});
  CHECK(r.exit_code == 0);
  CHECK(r.output == "hello from kubesim\n");

  r = sim.Kubectl({"describe", "pod", "-l", "job-name=hello"});
  CHECK(r.exit_code == 0);
  CHECK(r.output.find("Status:           Succeeded") != std::string::npos);
  CHECK(r.output.find("Controlled By:  Job/hello") != std::string::npos);
  CHECK(r.output.find("Successfully assigned default/hello-") != std::string::npos);

  r = sim.Kubectl({"delete", "job", "hello"});
  CHECK(r.exit_code == 0);
  CHECK(r.output == "job.batch \"hello\" deleted\n");
  r = sim.Kubectl({"get", "jobs", "-o", "name"});
  CHECK(r.output.empty());
}

TEST_CASE("kubectl logs shows what a Job's process wrote", "[kubesim][kubectl][kubelet]") {
  Kubesim sim("cpu-only.yaml");
  // No kubesim.kiln.dev/ annotation: the kubelet runs the command as a local process.
  WriteFile(sim.dir() / "job.yaml", R"(apiVersion: batch/v1
kind: Job
metadata: {name: real}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: busybox:1.36
        command: [sh, -c]
        args: ['echo "out of $POD"; echo to stderr >&2']
        env:
        - name: POD
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
)");
  CommandResult r = sim.Kubectl({"apply", "-f", sim.dir() / "job.yaml"});
  INFO(r.output << sim.log());
  REQUIRE(r.exit_code == 0);
  int fd = -1;
  pid_t watcher = Spawn({KUBECTL_PROGRAM, "--kubeconfig", sim.kubeconfig(), "--cache-dir",
                         sim.dir() / "kube-cache", "get", "pods", "-w"},
                        "", &fd);
  std::string seen;
  try {
    seen = ReadUntil(fd, "Completed", std::chrono::seconds(20));
  } catch (const std::exception& e) {
    FAIL(e.what());
  }
  ::kill(watcher, SIGTERM);
  ::waitpid(watcher, nullptr, 0);
  ::close(fd);
  std::string pod = sim.Kubectl({"get", "pods", "-l", "job-name=real", "-o", "jsonpath={.items[0].metadata.name}"}).output;
  r = sim.Kubectl({"logs", "job/real"});
  CHECK(r.exit_code == 0);
  // Lines from stdout and stderr, in the order the kubelet read the two pipes.
  CHECK(r.output.size() == ("out of " + pod + "\nto stderr\n").size());
  CHECK(r.output.find("out of " + pod + "\n") != std::string::npos);
  CHECK(r.output.find("to stderr\n") != std::string::npos);
}

TEST_CASE("kubectl apply rejects an unknown field under strict validation", "[kubesim][kubectl]") {
  Kubesim sim("cpu-only.yaml");
  std::string typo = kJobYaml;
  typo.replace(typo.find("backoffLimit"), 12, "backofLimit");
  WriteFile(sim.dir() / "job.yaml", typo);
  CommandResult r = sim.Kubectl({"apply", "-f", sim.dir() / "job.yaml"});
  INFO(r.output << sim.log());
  CHECK(r.exit_code == 1);
  CHECK(r.output == "Error from server (BadRequest): error when creating \"" + sim.dir() / "job.yaml" +
                        "\": Job in version \"v1\" cannot be handled as a Job: strict decoding error: "
                        "unknown field \"spec.backofLimit\"\n");
  // --validate=warn creates it without the field, and says so.
  r = sim.Kubectl({"apply", "--validate=warn", "-f", sim.dir() / "job.yaml"});
  CHECK(r.exit_code == 0);
  CHECK(r.output == "Warning: unknown field \"spec.backofLimit\"\njob.batch/hello created\n");
}

}  // namespace
}  // namespace kiln::kubesim::testing
#endif  // KUBESIM_HAVE_KUBECTL
