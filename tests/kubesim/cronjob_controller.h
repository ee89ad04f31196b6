// The emulated CronJob controller (kubernetes pkg/controller/cronjob, v2): creates a Job from
// the jobTemplate at each schedule time (named <cronjob>-<minutes since the epoch>, owned by the
// CronJob, annotated batch.kubernetes.io/cronjob-scheduled-timestamp), honours suspend,
// concurrencyPolicy Allow/Forbid/Replace, startingDeadlineSeconds and the successful/failed
// history limits, and keeps status.active, lastScheduleTime and lastSuccessfulTime. Schedules
// are parsed by dag/cron.h (robfig/cron, as Kubernetes does), in spec.timeZone or UTC.
// Thread-safety: io_context thread only.
#ifndef KILN_TESTS_KUBESIM_CRONJOB_CONTROLLER_H_
#define KILN_TESTS_KUBESIM_CRONJOB_CONTROLLER_H_

#include <functional>
#include <memory>

#include "tests/kubesim/registry.h"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace kiln::kubesim {

class CronJobController {
 public:
  // `now` is the controller's clock. With `timers` the controller wakes itself at each next
  // schedule time (the kubesim binary: system clock and real timers); without, only Wake runs
  // due schedules (tests: a fake clock, time moved by hand).
  CronJobController(boost::asio::io_context& io, Registry& registry, std::function<SysTime()> now,
                    bool timers);
  ~CronJobController();
  void Start();
  // Syncs every CronJob at the clock's current time (posted to the io_context).
  void Wake();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::kubesim

#endif  // KILN_TESTS_KUBESIM_CRONJOB_CONTROLLER_H_
