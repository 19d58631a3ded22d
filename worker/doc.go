// Package worker runs the QA program for queued jobs: separate asynq servers
// for the interactive and batch queues (so a batch can never take the slots
// interactive work needs; one interactive server per 250 slots, since each
// server starts tasks from one serial dequeue loop), the task handlers, the one function that maps a
// failure to retry / fail / revoke / defer, token publishing, and the cancel
// listener. It reports only through the job record (package store) and the
// batch (package batches).
package worker
