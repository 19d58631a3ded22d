package api_test

import (
	"context"
	"strings"
	"testing"

	"github.com/qaqueue/qaqueue/api"
	"github.com/qaqueue/qaqueue/batches"
	"github.com/rs/zerolog"
)

// TestNewRequiresEveryCollaborator: the API builds none of its collaborators
// (cmd does, the batch store included, so the API and the workers share one
// batch configuration); New refuses Deps missing one, naming it.
func TestNewRequiresEveryCollaborator(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	bs, err := batches.NewStore(b.store, batches.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for name, drop := range map[string]func(*api.Deps){
		"Redis":    func(d *api.Deps) { d.Redis = nil },
		"Client":   func(d *api.Deps) { d.Client = nil },
		"Store":    func(d *api.Deps) { d.Store = nil },
		"Hub":      func(d *api.Deps) { d.Hub = nil },
		"Batches":  func(d *api.Deps) { d.Batches = nil },
		"Programs": func(d *api.Deps) { d.Programs = nil },
	} {
		deps := api.Deps{Redis: b.db.Client, Client: b.client, Store: b.store, Hub: b.hub, Batches: bs, Programs: b.programs, Log: zerolog.Nop()}
		drop(&deps)
		srv, err := api.New(api.Config{DisableMonitoring: true}, deps)
		if err == nil {
			_ = srv.Shutdown(context.Background())
			t.Errorf("New without Deps.%s: no error", name)
			continue
		}
		if !strings.Contains(err.Error(), "Deps."+name+" ") {
			t.Errorf("New without Deps.%s: %v, want it named", name, err)
		}
	}
}
