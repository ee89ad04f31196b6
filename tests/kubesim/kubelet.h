// The emulated kubelet of every node: runs the pods bound to nodes, either as local processes
// (each container's command, in bubblewrap when it works) or by simulating their containers from
// annotations (see docs/kubesim.md), writes pod status as a real kubelet does (phase, conditions,
// containerStatuses with running/terminated states), keeps container logs for pods/log, and
// finishes graceful deletions. Thread-safety: none; io_context thread only.
#ifndef KILN_TESTS_KUBESIM_KUBELET_H_
#define KILN_TESTS_KUBESIM_KUBELET_H_

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tests/kubesim/registry.h"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace kiln::kubesim {

// The annotations that script a simulated container (all containers of the pod).
inline constexpr const char* kDurationAnnotation = "kubesim.kiln.dev/duration";
inline constexpr const char* kExitCodeAnnotation = "kubesim.kiln.dev/exit-code";
inline constexpr const char* kLogsAnnotation = "kubesim.kiln.dev/logs";
inline constexpr const char* kMessageAnnotation = "kubesim.kiln.dev/termination-message";
// Set to "true" on a running pod (e.g. by a PATCH): its containers write the rest of their log
// and exit now, as if their duration had passed. Lets a test end a long step when it chooses.
inline constexpr const char* kExitNowAnnotation = "kubesim.kiln.dev/exit-now";

// How pods run. kAuto: a pod runs as processes when some container has a command (or args) and
// the pod carries none of the scripting annotations above (exit-now aside); otherwise it is
// simulated. kSimulate: every pod is simulated. kProcess: every pod with a command runs as
// processes, annotations or not. A pod without any command is always simulated.
enum class KubeletMode { kAuto, kSimulate, kProcess };

// "auto", "simulate" or "process"; nullopt for anything else.
std::optional<KubeletMode> ParseKubeletMode(std::string_view text);

struct KubeletOptions {
  KubeletMode mode = KubeletMode::kAuto;
  // A process pod deleted (or told to exit now) gets SIGTERM, then SIGKILL after its grace
  // period, capped at this so that tests stay quick.
  std::chrono::milliseconds max_grace{2000};
  // Host directories bound read-only at the same path in every process container, as parts of
  // the "image" that the container's private /tmp would otherwise hide (e.g. a kiln binary
  // built under /tmp, for the `kiln exec` agent).
  std::vector<std::string> image_dirs;
  // Where persistentVolumeClaim volumes live: the claim CLAIM of namespace NS is the directory
  // <volume_dir>/NS/CLAIM, made on first use and shared by every pod that mounts the claim (as a
  // ReadWriteMany volume would be). Empty: under the kubelet's scratch directory.
  std::string volume_dir;
};

struct ContainerLog {
  std::vector<std::pair<SysTime, std::string>> lines;  // without the trailing newline
};

class Kubelet {
 public:
  Kubelet(boost::asio::io_context& io, Registry& registry, KubeletOptions options = {});
  // Kills (SIGKILL) every container process still running and removes their scratch files.
  ~Kubelet();

  // Subscribes to pod changes; call once before serving.
  void Start();

  // The log of `container` in the pod with `pod_uid` (current run), or nullptr when it has not
  // started. A process's stdout and stderr lines as it writes them; a simulated container writes
  // its lines spread over its duration (the first when it starts, the rest before it exits), all
  // of them when it has no duration.
  const ContainerLog* Log(const std::string& pod_uid, const std::string& container) const;

  // `listener(pod_uid)` is called after lines were added to a log of that pod (followed logs).
  // Returns an id for RemoveLogListener.
  using LogListener = std::function<void(const std::string& pod_uid)>;
  int AddLogListener(LogListener listener) const;
  void RemoveLogListener(int id) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::kubesim

#endif  // KILN_TESTS_KUBESIM_KUBELET_H_
