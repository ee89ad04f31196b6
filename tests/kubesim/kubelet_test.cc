// The kubelet running containers as local processes (tests/kubesim/kubelet.h): exit codes,
// termination messages, env, live logs, graceful deletion and volumes, in process on one
// io_context.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "tests/kubesim/in_process.h"
#include "tests/kubesim/test_util.h"

namespace kiln::kubesim {
namespace {

using Cluster = testing::InProcessCluster;

json Container(const std::string& name, const std::string& script) {
  return {{"name", name}, {"image", "busybox"}, {"command", {"sh", "-c", script}}};
}

json PodWith(const std::string& name, json containers, json extra_spec = json::object()) {
  json pod = {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata", {{"name", name}}},
              {"spec", {{"restartPolicy", "Never"}, {"containers", std::move(containers)}}}};
  pod["spec"].update(extra_spec);
  return pod;
}

json JobOf(const std::string& name, json container) {
  return {{"apiVersion", "batch/v1"},
          {"kind", "Job"},
          {"metadata", {{"name", name}}},
          {"spec",
           {{"backoffLimit", 0},
            {"template", {{"spec", {{"restartPolicy", "Never"}, {"containers", {std::move(container)}}}}}}}}};
}

std::vector<std::string> LogLines(const Cluster& c, const json& pod, const std::string& container) {
  const ContainerLog* log = c.kubelet.Log(pod["metadata"]["uid"], container);
  std::vector<std::string> out;
  if (log) {
    for (const auto& [t, line] : log->lines) out.push_back(line);
  }
  return out;
}

// Host processes of the container's command (`sh` or `sleep`, not bwrap) that mention `token`.
int Running(const std::string& token) {
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::ifstream in(entry.path() / "cmdline");
    std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    bool command = cmdline.starts_with(std::string("sh\0", 3)) || cmdline.starts_with(std::string("sleep\0", 6));
    n += command && cmdline.find(token) != std::string::npos ? 1 : 0;
  }
  return n;
}

const json& Terminated(const json& pod, size_t i = 0) {
  return pod["status"]["containerStatuses"][i]["state"]["terminated"];
}

TEST_CASE("a failing process gives its exit code, termination message, env and log", "[kubesim][kubelet]") {
  Cluster c("cpu-only.yaml");
  json container = Container("main", "echo hello; echo $GREETING; echo -n done > /dev/termination-log; exit 3");
  container["env"] = {{{"name", "GREETING"}, {"value", "hi $(WHO)"}}, {{"name", "WHO"}, {"value", "there"}}};
  REQUIRE(c.registry.Create(Jobs(), "default", JobOf("fails", container)));
  c.Settle();
  auto pods = c.store.List(Pods(), "default");
  REQUIRE(pods.size() == 1);
  const json& pod = *pods[0];
  INFO(pod["status"].dump(1));
  CHECK(pod["status"]["phase"] == "Failed");
  const json& term = Terminated(pod);
  CHECK(term["exitCode"] == 3);
  CHECK(term["reason"] == "Error");
  CHECK(term["message"] == "done");
  CHECK(ParseRfc3339(term["startedAt"].get<std::string>()) <= ParseRfc3339(term["finishedAt"].get<std::string>()));
  // $(WHO) is defined after GREETING, so it stays as written (Kubernetes' order rule).
  CHECK(LogLines(c, pod, "main") == std::vector<std::string>{"hello", "hi $(WHO)"});
  ObjectPtr job = c.store.Get(Jobs(), "default", "fails");
  CHECK((*job)["status"]["conditions"][1]["type"] == "Failed");
}

TEST_CASE("a succeeding process completes its Job; env comes from a ConfigMap, a Secret and the pod",
          "[kubesim][kubelet]") {
  Cluster c("cpu-only.yaml");
  REQUIRE(c.registry.Create(*FindResource("", "v1", "configmaps"), "default",
                            {{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", {{"name", "cfg"}}},
                             {"data", {{"color", "blue"}}}}));
  REQUIRE(c.registry.Create(*FindResource("", "v1", "secrets"), "default",
                            {{"apiVersion", "v1"}, {"kind", "Secret"}, {"metadata", {{"name", "sec"}}},
                             {"data", {{"token", "czNjcjN0"}}}}));  // "s3cr3t"
  json container = Container("main", "echo $COLOR $TOKEN $POD $NS; pwd");
  container["workingDir"] = "/usr";
  container["env"] = {
      {{"name", "COLOR"}, {"valueFrom", {{"configMapKeyRef", {{"name", "cfg"}, {"key", "color"}}}}}},
      {{"name", "TOKEN"}, {"valueFrom", {{"secretKeyRef", {{"name", "sec"}, {"key", "token"}}}}}},
      {{"name", "POD"}, {"valueFrom", {{"fieldRef", {{"fieldPath", "metadata.name"}}}}}},
      {{"name", "NS"}, {"valueFrom", {{"fieldRef", {{"fieldPath", "metadata.namespace"}}}}}}};
  REQUIRE(c.registry.Create(Jobs(), "default", JobOf("works", container)));
  c.Settle();
  ObjectPtr job = c.store.Get(Jobs(), "default", "works");
  INFO((*job)["status"].dump(1));
  CHECK((*job)["status"]["conditions"][1]["type"] == "Complete");
  CHECK((*job)["status"]["succeeded"] == 1);
  const json& pod = *c.store.List(Pods(), "default")[0];
  CHECK(pod["status"]["phase"] == "Succeeded");
  CHECK(Terminated(pod)["exitCode"] == 0);
  CHECK(Terminated(pod)["reason"] == "Completed");
  CHECK_FALSE(Terminated(pod).contains("message"));
  std::string name = pod["metadata"]["name"];
  CHECK(LogLines(c, pod, "main") == std::vector<std::string>{"blue s3cr3t " + name + " default", "/usr"});
}

TEST_CASE("a missing ConfigMap key is CreateContainerConfigError and the pod stays Pending", "[kubesim][kubelet]") {
  Cluster c("cpu-only.yaml");
  json container = Container("main", "echo never");
  container["env"] = {{{"name", "X"}, {"valueFrom", {{"configMapKeyRef", {{"name", "absent"}, {"key", "k"}}}}}}};
  REQUIRE(c.registry.Create(Pods(), "default", PodWith("p", {container})));
  c.Settle();
  ObjectPtr pod = c.store.Get(Pods(), "default", "p");
  INFO((*pod)["status"].dump(1));
  CHECK((*pod)["status"]["phase"] == "Pending");
  const json& waiting = (*pod)["status"]["containerStatuses"][0]["state"]["waiting"];
  CHECK(waiting["reason"] == "CreateContainerConfigError");
  CHECK(waiting["message"] == "configmap \"absent\" not found");
  CHECK(c.kubelet.Log((*pod)["metadata"]["uid"], "main") == nullptr);
}

TEST_CASE("FallbackToLogsOnError takes the log tail when the message file is empty", "[kubesim][kubelet]") {
  Cluster c("cpu-only.yaml");
  json container = Container("main", "echo one; echo two; exit 1");
  container["terminationMessagePolicy"] = "FallbackToLogsOnError";
  REQUIRE(c.registry.Create(Pods(), "default", PodWith("p", {container})));
  c.Settle();
  ObjectPtr pod = c.store.Get(Pods(), "default", "p");
  CHECK(Terminated(*pod)["message"] == "one\ntwo\n");
}

TEST_CASE("a command that cannot be found is StartError with exit code 128", "[kubesim][kubelet]") {
  Cluster c("cpu-only.yaml");
  json container = {{"name", "main"}, {"image", "cuda"}, {"command", {"kubesim-no-such-program"}}};
  REQUIRE(c.registry.Create(Pods(), "default", PodWith("p", {container})));
  c.Settle();
  ObjectPtr pod = c.store.Get(Pods(), "default", "p");
  INFO((*pod)["status"].dump(1));
  CHECK((*pod)["status"]["phase"] == "Failed");
  CHECK(Terminated(*pod)["exitCode"] == 128);
  CHECK(Terminated(*pod)["reason"] == "StartError");
  CHECK(Terminated(*pod)["message"] == "executable not found: kubesim-no-such-program");
}

TEST_CASE("a followed log sees a line while the process still runs", "[kubesim][kubelet]") {
  Cluster c("cpu-only.yaml");
  testing::TempDir dir;
  std::string fifo = dir / "go";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  json container = Container("main", "echo waiting; read word < /control/go; echo got $word");
  container["volumeMounts"] = {{{"name", "control"}, {"mountPath", "/control"}}};
  REQUIRE(c.registry.Create(Pods(), "default",
                            PodWith("p", {container},
                                    {{"volumes", {{{"name", "control"}, {"hostPath", {{"path", dir.path()}}}}}}})));
  bool saw_line_while_running = false;
  c.kubelet.AddLogListener([&](const std::string& uid) {
    ObjectPtr pod = c.store.Get(Pods(), "default", "p");
    if (saw_line_while_running || !pod || (*pod)["metadata"]["uid"] != uid) return;
    const ContainerLog* log = c.kubelet.Log(uid, "main");
    if (!log || log->lines.empty() || log->lines[0].second != "waiting") return;
    saw_line_while_running = (*pod)["status"]["phase"] == "Running";
    int fd = ::open(fifo.c_str(), O_WRONLY);  // the process opens the other end
    REQUIRE(fd >= 0);
    REQUIRE(::write(fd, "yes\n", 4) == 4);
    ::close(fd);
  });
  c.Settle();
  CHECK(saw_line_while_running);
  ObjectPtr pod = c.store.Get(Pods(), "default", "p");
  CHECK((*pod)["status"]["phase"] == "Succeeded");
  CHECK(LogLines(c, *pod, "main") == std::vector<std::string>{"waiting", "got yes"});
}

TEST_CASE("deleting a running pod stops its process: SIGTERM, then SIGKILL after the grace period",
          "[kubesim][kubelet]") {
  KubeletOptions options;
  options.max_grace = std::chrono::milliseconds(300);
  Cluster c("cpu-only.yaml", options);
  // A unique sleep time marks the processes on the host.
  std::string token = "3599." + std::to_string(::getpid());
  bool ignores_term = GENERATE(false, true);
  std::string script = std::string(ignores_term ? "trap '' TERM; " : "") + "echo started; sleep " + token + "; true";
  REQUIRE(c.registry.Create(Pods(), "default", PodWith("p", {Container("main", script)})));
  json last;
  c.store.Subscribe([&](const StoreEvent& e) {
    if (e.resource == &Pods()) last = *e.object;
  });
  auto started = [&] {
    ObjectPtr pod = c.store.Get(Pods(), "default", "p");
    return pod && !LogLines(c, *pod, "main").empty();
  };
  c.RunUntil(started);
  CHECK(Running(token) >= 1);  // sh has written its line
  DeleteOptions grace;
  grace.grace_period_seconds = 30;
  REQUIRE(c.registry.Delete(Pods(), "default", "p", grace));
  c.RunUntil([&] { return !c.store.Get(Pods(), "default", "p"); });
  INFO(last.dump(1));
  CHECK(last["status"]["phase"] == "Failed");
  CHECK(Terminated(last)["exitCode"] == (ignores_term ? 137 : 143));
  CHECK(Running(token) == 0);
}

TEST_CASE("exit-now on a running process pod ends it with SIGTERM", "[kubesim][kubelet]") {
  Cluster c("cpu-only.yaml");
  REQUIRE(c.registry.Create(Pods(), "default", PodWith("p", {Container("main", "echo up; exec sleep 3600")},
                                                        {{"restartPolicy", "Always"}})));
  c.RunUntil([&] {
    ObjectPtr pod = c.store.Get(Pods(), "default", "p");
    return pod && !LogLines(c, *pod, "main").empty();
  });
  REQUIRE(c.registry.Mutate(Pods(), "default", "p", [](json& p) {
    p["metadata"]["annotations"][kExitNowAnnotation] = "true";
  }));
  c.Settle();
  ObjectPtr pod = c.store.Get(Pods(), "default", "p");
  INFO((*pod)["status"].dump(1));
  CHECK((*pod)["status"]["phase"] == "Failed");  // no restart, though the policy is Always
  CHECK(Terminated(*pod)["exitCode"] == 143);
}

TEST_CASE("containers run concurrently and share an emptyDir", "[kubesim][kubelet]") {
  Cluster c("cpu-only.yaml");
  json writer = Container("writer", "echo shared-text > /work/msg.tmp && mv /work/msg.tmp /work/msg");
  // Polls inside the container: the test itself waits on nothing but the processes' ends.
  json reader = Container("reader", "i=0; while [ ! -e /work/msg ] && [ $i -lt 2000 ]; do i=$((i+1)); sleep 0.01; done; "
                                    "cat /work/msg; cat /work/msg > /dev/termination-log");
  for (json* ct : {&writer, &reader}) (*ct)["volumeMounts"] = {{{"name", "work"}, {"mountPath", "/work"}}};
  REQUIRE(c.registry.Create(Pods(), "default", PodWith("p", {writer, reader},
                                                        {{"volumes", {{{"name", "work"}, {"emptyDir", json::object()}}}}})));
  c.Settle();
  ObjectPtr pod = c.store.Get(Pods(), "default", "p");
  INFO((*pod)["status"].dump(1));
  CHECK((*pod)["status"]["phase"] == "Succeeded");
  CHECK(LogLines(c, *pod, "reader") == std::vector<std::string>{"shared-text"});
  CHECK(Terminated(*pod, 1)["message"] == "shared-text\n");
}

TEST_CASE("a container's root file system is writable, /mnt starts empty, and a PVC outlives its pods",
          "[kubesim][kubelet]") {
  testing::TempDir volumes;
  KubeletOptions options;
  options.volume_dir = volumes.path();
  Cluster c("cpu-only.yaml", options);
  // As in a container: the working directory is "/", files can be written anywhere outside the
  // image's system directories, and the host's /mnt is not there.
  json first = Container("main", "echo top > result.txt && mkdir -p /mnt/out && echo deep > /mnt/out/x && "
                                 "ls /mnt > /mnt/out/listing && cat /result.txt /mnt/out/x > /data/kept");
  first["volumeMounts"] = {{{"name", "data"}, {"mountPath", "/data"}}};
  json volume = {{{"name", "data"}, {"persistentVolumeClaim", {{"claimName", "shared"}}}}};
  REQUIRE(c.registry.Create(Pods(), "default", PodWith("first", {first}, {{"volumes", volume}})));
  c.Settle();
  ObjectPtr pod = c.store.Get(Pods(), "default", "first");
  INFO((*pod)["status"].dump(1) << LogLines(c, *pod, "main").size());
  REQUIRE((*pod)["status"]["phase"] == "Succeeded");
  CHECK(testing::ReadFile(volumes / "default/shared/kept") == "top\ndeep\n");
  CHECK_FALSE(std::filesystem::exists("/result.txt"));  // the host's root is untouched
  // A second pod mounting the claim read-only sees the first's file and cannot change it.
  json second = Container("main", "cat /data/kept > /dev/termination-log; ! touch /data/other");
  second["volumeMounts"] = {{{"name", "data"}, {"mountPath", "/data"}}};
  volume[0]["persistentVolumeClaim"]["readOnly"] = true;
  REQUIRE(c.registry.Create(Pods(), "default", PodWith("second", {second}, {{"volumes", volume}})));
  c.Settle();
  pod = c.store.Get(Pods(), "default", "second");
  INFO((*pod)["status"].dump(1));
  CHECK((*pod)["status"]["phase"] == "Succeeded");
  CHECK(Terminated(*pod)["message"] == "top\ndeep\n");
  CHECK_FALSE(std::filesystem::exists(volumes / "default/shared/other"));
}

TEST_CASE("OnFailure restarts a failed process in place", "[kubesim][kubelet]") {
  Cluster c("cpu-only.yaml");
  testing::TempDir dir;
  // Fails the first time, succeeds the second: the count lives on the host.
  std::string script = "if [ -e /state/ran ]; then echo second; exit 0; fi; touch /state/ran; echo first; exit 2";
  json container = Container("main", script);
  container["volumeMounts"] = {{{"name", "state"}, {"mountPath", "/state"}}};
  REQUIRE(c.registry.Create(Pods(), "default",
                            PodWith("p", {container},
                                    {{"restartPolicy", "OnFailure"},
                                     {"volumes", {{{"name", "state"}, {"hostPath", {{"path", dir.path()}}}}}}})));
  c.Settle();
  ObjectPtr pod = c.store.Get(Pods(), "default", "p");
  INFO((*pod)["status"].dump(1));
  const json& cs = (*pod)["status"]["containerStatuses"][0];
  CHECK((*pod)["status"]["phase"] == "Succeeded");
  CHECK(cs["restartCount"] == 1);
  CHECK(cs["lastState"]["terminated"]["exitCode"] == 2);
  CHECK(LogLines(c, *pod, "main") == std::vector<std::string>{"second"});
}

TEST_CASE("a pod with scripting annotations is simulated even with a command", "[kubesim][kubelet]") {
  Cluster c("cpu-only.yaml");
  json pod = PodWith("p", {Container("main", "exit 9")});
  pod["metadata"]["annotations"] = {{kExitCodeAnnotation, "4"}};
  REQUIRE(c.registry.Create(Pods(), "default", pod));
  c.Settle();
  CHECK(Terminated(*c.store.Get(Pods(), "default", "p"))["exitCode"] == 4);

  KubeletOptions process;
  process.mode = KubeletMode::kProcess;
  Cluster forced("cpu-only.yaml", process);
  REQUIRE(forced.registry.Create(Pods(), "default", pod));
  forced.Settle();
  CHECK(Terminated(*forced.store.Get(Pods(), "default", "p"))["exitCode"] == 9);
}

}  // namespace
}  // namespace kiln::kubesim
