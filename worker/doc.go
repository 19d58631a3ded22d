// Package worker runs the QA program for queued jobs: two asynq servers per
// process (interactive and batch, so a batch can never take the slots
// interactive work needs), the task handler, the one function that maps a
// failure to retry / fail / revoke / defer, token publishing, and the cancel
// listener. It reports only through the job record (package jobs).
package worker
