package offload_test

import (
	"context"
	"io"
	"sync"
	"testing"

	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/lmclient"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
	"github.com/qaqueue/qaqueue/offload"
	"github.com/rs/zerolog"
)

// phaseAtOpen is the fake provider's batch API, noting the batch's
// provider phase, as a client reading the batch sees it, each time the
// runner opens a file to download.
type phaseAtOpen struct {
	*lmclient.BatchAPI
	b  *bundle
	id string

	mu     sync.Mutex
	phases []jobs.ProviderPhase
}

func (p *phaseAtOpen) OpenFile(ctx context.Context, id string) (io.ReadCloser, error) {
	bt, err := p.b.bs.Get(ctx, p.id)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	if bt.Provider != nil {
		p.phases = append(p.phases, bt.Provider.Phase)
	} else {
		p.phases = append(p.phases, "")
	}
	p.mu.Unlock()
	return p.BatchAPI.OpenFile(ctx, id)
}

// While the runner downloads and records a round's answers (minutes for a
// large batch), the batch's provider object says downloading, not the
// provider's last status (issue 17 item 5 lists the phase).
func TestDownloadingPhaseShown(t *testing.T) {
	b := setup(t, offload.Config{MaxRequests: 2}, fakelm.BatchConfig{})
	bt := b.qaBatch(t, "Why is the sky blue?", "What is a prime number?", "Who wrote Hamlet?")
	spy := &phaseAtOpen{BatchAPI: b.api, b: b, id: bt.ID}
	r, err := offload.New(offload.Config{MaxRequests: 2}, offload.Deps{Batches: b.bs, Programs: b.programs, LM: b.lc,
		Provider: spy, Prices: b.prices, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	b.r = r
	b.expand(t, bt)
	b.runToEnd(t, bt.ID)

	if end := b.get(t, bt.ID); end.Status != jobs.BatchCompleted || end.Provider == nil || end.Provider.Phase != jobs.ProviderDone {
		t.Fatalf("batch %s, provider %+v; want completed, phase done", end.Status, end.Provider)
	}
	if len(spy.phases) != 2 {
		t.Fatalf("%d output files opened, want 2 (two chunks): %v", len(spy.phases), spy.phases)
	}
	for i, p := range spy.phases {
		if p != jobs.ProviderDownloading {
			t.Errorf("chunk %d's output opened with the batch's provider phase %q, want %q", i, p, jobs.ProviderDownloading)
		}
	}
}
