package worker

import (
	"slices"

	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/pricing"
)

// price sets what r, a live run's result, cost and used (Cost, Tokens) and
// each of its stages' cost, from the run's usage before TRACK_USAGE=false
// drops it, at the live prices of Deps.Prices. A stage that has a cost
// already keeps it: one a provider round answered (an offloaded batch
// item's, at the batch prices) before the item went live. An unreadable
// usage leaves the cost unknown.
func (w *Worker) price(r *jobs.Result, res *RunResult) {
	byModel, err := pricing.ParseUsage(res.Usage)
	if err != nil {
		return
	}
	r.Tokens = pricing.Tokens(byModel)
	prices := w.deps.Prices
	if len(res.Stages) == 0 {
		r.Cost = prices.CostOfModels(byModel, false)
		return
	}
	stages := slices.Clone(res.Stages)
	total := new(int64)
	for i := range stages {
		if stages[i].Cost == nil {
			if u, err := pricing.ParseUsage(stages[i].Usage); err == nil {
				stages[i].Cost = prices.CostOfModels(u, false)
			}
		}
		total = pricing.Add(total, stages[i].Cost)
	}
	r.Stages, r.Cost = stages, total
}
