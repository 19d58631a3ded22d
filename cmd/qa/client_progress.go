package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

func decodeJSON(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }

// progressBar draws a batch's progress on one terminal line: a bar, the
// counts, the rate since the first event and the time left at that rate,
// once measured.
type progressBar struct {
	w     io.Writer
	now   func() time.Time
	start time.Time
	first int // items already done at the first event
	drawn bool
}

func newProgressBar(w io.Writer, now func() time.Time) *progressBar {
	return &progressBar{w: w, now: now, first: -1}
}

// line renders the bar for d at time t.
func (p *progressBar) line(d batchProgressData, t time.Time) string {
	n := d.RequestCounts
	done := n.Completed + n.Failed + n.Cancelled
	if p.first < 0 {
		p.first, p.start = done, t
	}
	const width = 30
	filled := 0
	if n.Total > 0 {
		filled = done * width / n.Total
	}
	bar := strings.Repeat("#", filled) + strings.Repeat(".", width-filled)
	rate, eta := "?", "?"
	if el := t.Sub(p.start); el >= etaMinElapsed && done-p.first >= etaMinItems {
		r := float64(done-p.first) / el.Seconds()
		rate = fmt.Sprintf("%.0f", r)
		eta = time.Duration(float64(n.Total-done) / r * float64(time.Second)).Round(time.Second).String()
	}
	line := fmt.Sprintf("[%s] %d/%d  ok %d  failed %d  cancelled %d  %s/s  ETA %s  %s",
		bar, done, n.Total, n.Completed, n.Failed, n.Cancelled, rate, eta, d.Status)
	if pr := d.Provider; pr != nil {
		line += "  " + providerPhase(pr)
	}
	return line
}

// providerPhase says where a provider-mode batch's round is: the items'
// counts move only as a round's results are downloaded, hours apart.
func providerPhase(pr *providerData) string {
	where := fmt.Sprintf("round %d", pr.Round)
	if pr.Stage != "" {
		where += ", stage " + pr.Stage
	}
	s := fmt.Sprintf("provider %s (%s) %d/%d", pr.Phase, where, pr.Counts.Completed+pr.Counts.Failed, pr.Counts.Total)
	if pr.Counts.Cached > 0 {
		s += fmt.Sprintf(", %d cached", pr.Counts.Cached)
	}
	return s
}

// The rate and ETA wait until they are measured: the first items carry the
// pickup, a cold cache or one slow answer, and an ETA from them swings wildly.
const (
	etaMinItems   = 5
	etaMinElapsed = 2 * time.Second
)

func (p *progressBar) update(d batchProgressData) {
	fmt.Fprintf(p.w, "\r\033[K%s", p.line(d, p.now()))
	p.drawn = true
}

func (p *progressBar) done() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}
