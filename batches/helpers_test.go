package batches_test

import (
	"context"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
)

// bundle is a private Redis database and the job store on it, under the
// batches of a test.
type bundle struct {
	db    *redistest.DB
	store *store.Jobs
}

func setup(t *testing.T, cfg store.Config) *bundle {
	t.Helper()
	db := redistest.New(t)
	jobStore, err := store.NewJobs(db.Client, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &bundle{db: db, store: jobStore}
}

func eventTypes(evs []jobs.Event) []jobs.EventType {
	out := make([]jobs.EventType, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

// batchOf is the batch-wide spec of owner's batch of questions to the QA
// program.
func batchOf(owner string) jobs.Spec {
	return jobs.Spec{ClientSpec: jobs.ClientSpec{Program: jobs.ProgramQA}, ServerSpec: jobs.ServerSpec{Owner: owner}}
}

// ask is the inputs of question q.
func ask(q string) jobs.Inputs { return jobs.Inputs{"question": q} }

// expireBatch makes batch id's life (its window, then its results' TTL)
// pass as Redis would end it: its keys deleted, and bs's clock moved past
// that life.
func expireBatch(t *testing.T, b *bundle, bs *batches.Store, id string) {
	t.Helper()
	if err := b.db.Client.Del(context.Background(), jobs.BatchKey(id), jobs.BatchItemsKey(id), jobs.BatchResultsKey(id),
		jobs.BatchAttemptsKey(id), jobs.BatchEventsKey(id)).Err(); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(bs.Config().CompletionWindow + bs.Config().ResultTTL + time.Minute)
	batches.SetClock(bs, func() time.Time { return later })
}
