// Where kiln keeps its data on this machine, and reading back what `kiln run` recorded there:
// shared by `kiln run`, `kiln get`, `kiln list` and `kiln logs` so they agree on every path.
//
//   <data>/kiln.db                                   the store (store/sqlite_store.h)
//   <data>/workflows/<uid>/steps/<hex>/log           a step's log (executor/local_step_runner.h)
//   <data>/artifacts/<sha256>                        the local artifact repository
//   <data>/artifacts/keys/<key>                      its key-only artifacts
//                                                    (executor/local_artifact_repository.h)
//
// Thread-safety: the functions are thread-safe; a returned store is as thread-safe as
// SqliteStore (store/sqlite_store.h).
#ifndef KILN_CLI_DATA_DIR_H_
#define KILN_CLI_DATA_DIR_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "store/records.h"
#include "store/sqlite_store.h"

namespace kiln::cli {

// $KILN_DATA_DIR, else ~/.local/share/kiln, else ./.kiln (no HOME).
std::string DefaultDataDir();
// `flag` (the --data-dir value) when given, else DefaultDataDir().
std::string ResolveDataDir(const std::string& flag);
// <data_dir>/kiln.db
std::string DatabasePath(const std::string& data_dir);
// The directory of workflow `uid`'s step files (LocalOptions::work_dir in `kiln run`).
std::string WorkflowWorkDir(const std::string& data_dir, const std::string& uid);
// The log file of node `node_id` of workflow `uid`: the path LocalStepRunner::LogPath gives for
// WorkflowWorkDir(data_dir, uid) as its work_dir.
std::string StepLogPath(const std::string& data_dir, const std::string& uid,
                        const std::string& node_id);

// Opens the store of `data_dir` to read what was recorded; never creates anything.
// Errors (each names the path and what to do):
//   kNotFound: the data directory or its kiln.db does not exist (no workflow ran with it).
//   kInvalidArgument: the data directory is not a directory.
//   Otherwise SqliteStore::Open's errors (a file that is not a kiln database is kFailedPrecondition
//   and is left byte-for-byte as it was).
Result<std::unique_ptr<store::SqliteStore>> OpenRecordedStore(const std::string& data_dir);

// The workflow `name_or_uid` names: a uid, else a name in `namespace_` (any namespace when
// empty). Errors: kNotFound `workflow "X" not found in <db>; `kiln list --data-dir D` shows the
// recorded ones`; kInvalidArgument when a name is used in several namespaces (pass -n); the
// store's errors.
Result<store::WorkflowRecord> FindRecordedWorkflow(store::Store& store, const std::string& data_dir,
                                                   const std::string& name_or_uid,
                                                   const std::string& namespace_);

// Formatting shared by get, list and logs.
// "2026-11-23 21:05:03 +0100" in local time; "-" for 0.
std::string FormatTime(int64_t ms);
// "2026-11-23T20:05:03.123Z"; "" for 0.
std::string FormatTimeUtc(int64_t ms);
// "0.4s", "12.0s", "3m07s", "2h05m"; "-" when either end is 0.
std::string FormatDuration(int64_t started_ms, int64_t finished_ms);

}  // namespace kiln::cli

#endif  // KILN_CLI_DATA_DIR_H_
