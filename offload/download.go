package offload

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/lmclient"
	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/programrun"
)

// poll looks at the round's provider batches once; wait > 0 while any
// still runs.
func (b *run) poll(ctx context.Context) (time.Duration, error) {
	unfinished := false
	for k := range b.chunks {
		ch := &b.chunks[k]
		switch {
		case ch.BatchID == "" && !b.st.Cancelled:
			unfinished = true // to be created again (see create)
			continue
		case ch.BatchID == "" || ended(ch):
			continue // never created (cancelled first), or ended
		}
		pb, err := b.r.deps.Provider.GetBatch(ctx, ch.BatchID)
		if notFound(err) {
			b.gone(ch, fmt.Sprintf("provider batch %s is gone", ch.BatchID), err)
			if err := b.saveChunk(ctx, k); err != nil {
				return 0, err
			}
			continue
		}
		if err != nil {
			b.r.deps.Metrics.poll("error")
			return 0, fmt.Errorf("get provider batch %s: %w", ch.BatchID, err)
		}
		before := *ch
		ch.Status, ch.Completed, ch.Failed = pb.Status, pb.Counts.Completed, pb.Counts.Failed
		ch.OutputFileID, ch.ErrorFileID = pb.OutputFileID, pb.ErrorFileID
		switch {
		case !finalStatus(pb.Status):
			unfinished = true
		case overTokenLimit(pb):
			// The provider holds too many of this key's tokens in batches:
			// the chunk waits and is sent again (a new batch on the same
			// file), it does not fail.
			b.log.Info().Str("provider_batch", pb.ID).Int("chunk", k).Msg("provider's enqueued-token limit reached: the chunk waits")
			ch.BatchID, ch.Status, ch.Creating = "", "", false
			unfinished = true
		case len(pb.Errors) > 0:
			b.log.Warn().Str("provider_batch", pb.ID).Str("status", pb.Status).Strs("errors", pb.Errors).Msg("provider batch ended with errors")
		}
		if *ch != before {
			if err := b.saveChunk(ctx, k); err != nil {
				return 0, err
			}
		}
	}
	b.st.Phase = phaseOf(b.chunks)
	if unfinished {
		b.r.deps.Metrics.poll("unfinished")
		b.st.Polls++
		if err := b.save(ctx); err != nil {
			return 0, err
		}
		_ = b.publish(ctx, nil) // best effort: the next write corrects it
		return b.r.cfg.backoff(b.st.Polls), nil
	}
	b.r.deps.Metrics.poll("finished")
	// Show downloading while the answers are read and recorded (minutes for
	// a large round), not the provider's last status.
	_ = b.publish(ctx, nil) // best effort: the next write corrects it
	return 0, nil
}

// notFound reports whether err is the provider's permanent "no such
// object": unlike its retryable errors, no wait brings the object back.
func notFound(err error) bool {
	var ae *lmclient.APIError
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

// gone records that the provider no longer has what what names (err its
// answer): chunk ch has ended without the answers it held. The provider
// object shows it while the round is shown (see publish).
func (b *run) gone(ch *batches.OffloadChunk, what string, err error) {
	b.log.Warn().Err(err).Int("round", b.st.Round).Int("from", ch.From).Int("to", ch.To).
		Msg(what + ": the chunk's unanswered items go on as an ended provider batch's")
	if ch.Gone != "" {
		ch.Gone += "; " // both its files
	}
	ch.Gone += fmt.Sprintf("%s: %v", what, err)
}

// overTokenLimit reports whether a provider batch failed validation for
// the enqueued-token limit alone.
func overTokenLimit(pb *lmclient.ProviderBatch) bool {
	if pb.Status != "failed" || len(pb.Errors) == 0 {
		return false
	}
	for _, e := range pb.Errors {
		if !strings.HasPrefix(e, "token_limit_exceeded") {
			return false
		}
	}
	return true
}

// cancelProvider cancels the round's provider batches (the batch is being
// cancelled): what they answered before they stop is still downloaded and
// recorded, since it is billed; the rest are counted cancelled.
func (b *run) cancelProvider(ctx context.Context) error {
	for k := range b.chunks {
		ch := &b.chunks[k]
		if ch.BatchID == "" && ch.Creating {
			// A runner died between creating the chunk's provider batch
			// and recording it: that batch runs (and bills) all the same,
			// and no create adopts it now.
			pb, err := b.find(ctx, k)
			if err != nil {
				return err
			}
			if pb != nil {
				ch.BatchID, ch.Status = pb.ID, pb.Status
				if err := b.saveChunk(ctx, k); err != nil {
					return err
				}
			}
		}
		if ch.BatchID == "" || ended(ch) {
			continue
		}
		pb, err := b.r.deps.Provider.CancelBatch(ctx, ch.BatchID)
		switch {
		case notFound(err):
			b.gone(ch, fmt.Sprintf("provider batch %s is gone", ch.BatchID), err)
		case err != nil:
			return fmt.Errorf("cancel provider batch %s: %w", ch.BatchID, err)
		default:
			ch.Status = pb.Status
		}
		if err := b.saveChunk(ctx, k); err != nil {
			return err
		}
	}
	b.st.Cancelled = true
	b.log.Info().Int("round", b.st.Round).Msg("batch cancelled: its provider batches are cancelled")
	return b.save(ctx)
}

// download records chunk k's answers once its provider batch has ended,
// sends what it left unanswered on, and deletes its provider files.
func (b *run) download(ctx context.Context, k int) error {
	ch := &b.chunks[k]
	if !ch.Downloaded {
		b.st.Phase = jobs.ProviderDownloading
		d := &chunkDownload{b: b, ch: ch, seen: map[int]bool{}, sem: make(chan struct{}, b.r.cfg.LiveParallel)}
		for _, f := range []string{ch.OutputFileID, ch.ErrorFileID} {
			if f == "" {
				continue
			}
			rc, err := b.r.deps.Provider.OpenFile(ctx, f)
			if notFound(err) {
				// Its lines go on below as unanswered ones.
				b.gone(ch, fmt.Sprintf("provider file %s of provider batch %s is gone", f, ch.BatchID), err)
				continue
			}
			if err != nil {
				return fmt.Errorf("open provider file %s: %w", f, err)
			}
			if err := d.file(ctx, f, rc); err != nil {
				return err
			}
		}
		if err := d.unanswered(ctx); err != nil {
			return err
		}
		if err := d.handOver(ctx); err != nil {
			return err
		}
		ch.Downloaded = true
		if err := b.saveChunk(ctx, k); err != nil {
			return err
		}
	}
	if !ch.Deleted {
		for _, f := range []string{ch.FileID, ch.OutputFileID, ch.ErrorFileID} {
			if f == "" {
				continue
			}
			if err := b.r.deps.Provider.DeleteFile(ctx, f); err != nil {
				return fmt.Errorf("delete provider file %s: %w", f, err)
			}
		}
		ch.Deleted = true
		return b.saveChunk(ctx, k)
	}
	return nil
}

// chunkDownload is the download of one chunk's files.
type chunkDownload struct {
	b   *run
	ch  *batches.OffloadChunk
	sem chan struct{}

	mu   sync.Mutex
	seen map[int]bool
	// live are the items to hand to the live path.
	live []int
	err  error
}

// file reads output or error file id (rc, closed here) line by line (each
// bounded by MaxLineBytes) and records each line's answer, LiveParallel at
// a time.
func (d *chunkDownload) file(ctx context.Context, id string, rc io.ReadCloser) error {
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 64<<10)
	var wg sync.WaitGroup
	for {
		line, err := readLine(br, d.b.r.cfg.MaxLineBytes)
		if errors.Is(err, errLineTooLong) {
			d.b.r.deps.Metrics.request("malformed", 1)
			d.b.log.Warn().Str("provider_file", id).Int("limit", d.b.r.cfg.MaxLineBytes).Msg("a provider line over the limit skipped; its item runs on")
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			wg.Wait()
			return fmt.Errorf("read provider file %s: %w", id, err)
		}
		if len(bytes.TrimSpace(line)) > 0 {
			d.sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-d.sem; wg.Done() }()
				if err := d.line(ctx, line); err != nil {
					d.mu.Lock()
					d.err = errors.Join(d.err, err)
					d.mu.Unlock()
				}
			}()
		}
		if err != nil { // EOF
			break
		}
	}
	wg.Wait()
	return d.err
}

var errLineTooLong = errors.New("line too long")

// readLine reads one line of at most limit bytes (without its newline); a
// longer one is read to its end and answered errLineTooLong.
func readLine(br *bufio.Reader, limit int) ([]byte, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		if len(line)+len(frag) > limit+1 {
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, err
			}
			return nil, errLineTooLong
		}
		line = append(line, frag...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return bytes.TrimSuffix(line, []byte("\n")), err
	}
}

// line records one line's answer.
func (d *chunkDownload) line(ctx context.Context, raw []byte) error {
	b := d.b
	cid, comp, lerr := b.r.deps.LM.ParseBatchLine(raw)
	index, attempt, ok := parseCustomID(cid)
	if !ok || index < d.ch.From || index >= d.ch.To {
		b.r.deps.Metrics.request("malformed", 1)
		b.log.Warn().Str("custom_id", cid).Err(lerr).Msg("a provider line not ours or unreadable; skipped")
		return nil
	}
	var ae *lmclient.APIError
	switch {
	case lerr != nil && !errors.As(lerr, &ae):
		// Its custom_id read, the rest not: unanswered, as an item
		// without a line is, not failed for the provider's garbling.
		b.r.deps.Metrics.request("malformed", 1)
		b.log.Warn().Str("custom_id", cid).Err(lerr).Msg("a provider line unreadable; its item runs on")
		return nil
	case ae != nil && ae.Unfinished():
		// The provider never ran it (its batch expired or was cancelled):
		// unanswered, as an item without a line is.
		return nil
	}
	x, ok, err := b.item(ctx, index)
	if err != nil || !ok {
		return err // recorded already (a download run again), or gone
	}
	x.attempt = attempt
	if lerr != nil {
		d.answered(index)
		return d.lineError(ctx, x, lerr)
	}
	in, err := b.inputs(x)
	if err != nil {
		return err
	}
	live := b.r.cfg.Fallback == FallbackLive && !b.st.Cancelled
	lm := &replayingLM{lm: b.r.deps.LM, answer: comp, live: live}
	res, err := b.c.Program.RunStage(ctx, lm, b.stages()[b.st.Stage].Key, in, b.runOptions(attempt))
	if errors.Is(err, program.ErrNoAttempt) {
		// An attempt the program does not have: not a request we sent.
		b.r.deps.Metrics.request("malformed", 1)
		b.log.Warn().Str("custom_id", cid).Msg("a provider line of an attempt the program has not; skipped")
		return nil
	}
	d.answered(index)
	// The provider's answer is billed whatever becomes of it.
	cost := b.cost(comp.Usage, lm.liveUsage)
	if cerr := b.r.deps.Batches.SetItemCost(ctx, b.id(), b.st.Round, x.index, cost); cerr != nil {
		return cerr
	}
	switch {
	case err == nil:
		path := jobs.PathProvider
		if lm.calls > 1 {
			path = jobs.PathLive
		}
		b.r.deps.Metrics.request(path, 1)
		return b.record(ctx, x, res, path, cost.Spent())
	case errors.Is(err, errDeferred) && !b.st.Cancelled:
		b.r.deps.Metrics.request("deferred", 1)
		return b.r.deps.Batches.DeferItem(ctx, b.id(), b.st.Round, x.index, attempt+lm.calls-1)
	case b.st.Cancelled:
		return nil // the sweep counts it cancelled: a cancelled batch runs no fallback
	case ctx.Err() != nil:
		return ctx.Err()
	case lmclient.Retryable(err):
		// A live fallback the LM refused for now: the live path retries it.
		d.handLive(x.index)
		return nil
	default:
		b.r.deps.Metrics.request("failed", 1)
		return b.fail(ctx, x, runFailure(err))
	}
}

// lineError records a line the provider answered with an error: a
// permanent one fails the item; a retryable one sends it to a further
// round once (PROVIDER_FALLBACK=provider) or to the live path.
func (d *chunkDownload) lineError(ctx context.Context, x item, err error) error {
	b := d.b
	if b.st.Cancelled {
		return nil
	}
	if !lmclient.Retryable(err) {
		b.r.deps.Metrics.request("failed", 1)
		return b.fail(ctx, x, runFailure(err))
	}
	if b.r.cfg.Fallback == FallbackProvider && !b.st.Fallback {
		b.r.deps.Metrics.request("deferred", 1)
		return b.r.deps.Batches.DeferItem(ctx, b.id(), b.st.Round, x.index, x.attempt)
	}
	d.handLive(x.index)
	return nil
}

// answered marks item index answered by a line of ours: not sent on as
// unanswered.
func (d *chunkDownload) answered(index int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.seen[index] = true
}

func (d *chunkDownload) handLive(index int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.live = append(d.live, index)
}

// unanswered sends on the chunk's items that no line answered (its
// provider batch expired, failed or was cancelled first, or a line was
// unreadable): to the live path or failed, per Config.Unfinished. A
// cancelled batch's are left to its sweep.
func (d *chunkDownload) unanswered(ctx context.Context) error {
	b := d.b
	if b.st.Cancelled {
		return nil
	}
	var why string
	switch {
	case d.ch.Gone != "":
		why = d.ch.Gone + ": this item is unanswered (PROVIDER_UNFINISHED=fail)"
	case d.ch.BatchID == "":
		why = "the provider batch was not created: this item is unanswered (PROVIDER_UNFINISHED=fail)"
	default:
		why = fmt.Sprintf("provider batch %s ended %s without answering this item (PROVIDER_UNFINISHED=fail)", d.ch.BatchID, d.ch.Status)
	}
	return b.items(ctx, d.ch.From, d.ch.To, func(x item) error {
		if d.seen[x.index] {
			return nil
		}
		if b.r.cfg.Unfinished == UnfinishedFail {
			b.r.deps.Metrics.request("failed", 1)
			return b.fail(ctx, x, &jobs.Error{Code: "provider_unfinished", Message: why})
		}
		d.handLive(x.index)
		return nil
	})
}

// handOver gives the items to send live their item tasks.
func (d *chunkDownload) handOver(ctx context.Context) error {
	if len(d.live) == 0 {
		return nil
	}
	d.b.r.deps.Metrics.request("handed_live", len(d.live))
	return d.b.r.deps.Batches.EnqueueLive(ctx, d.b.bt, d.live)
}

// item reads item index as the round runs it; ok false when it has a
// result or is past the round's stage (recorded by an earlier run).
func (b *run) item(ctx context.Context, index int) (x item, ok bool, err error) {
	err = b.items(ctx, index, index+1, func(found item) error {
		x, ok = found, true
		return nil
	})
	if b.st.Fallback && !ok {
		// A fallback round's items: b.items skips those not deferred to it.
		return x, false, err
	}
	return x, ok, err
}

// record records an item's finished stage, which cost cost (nil:
// unknown): a middle stage's as its checkpoint, the last stage's as the
// item's result (once, through the batch's item lifecycle).
func (b *run) record(ctx context.Context, x item, res *program.Result, path string, cost *int64) error {
	bs := b.r.deps.Batches
	stage, err := programrun.Finished(b.stages()[b.st.Stage].Key, res, res.Calls, b.multi())
	if err != nil {
		return err
	}
	stage.Checkpoint.Cost = cost
	if b.st.Stage < len(b.stages())-1 {
		return bs.SetStages(ctx, b.id(), x.index, append(x.done, stage.Checkpoint))
	}
	r, tokens, err := b.result(x, stage, path)
	if err != nil {
		return err
	}
	a, out, err := b.start(ctx, x)
	if err != nil || out != batches.ItemStarted {
		return err
	}
	_, err = a.Complete(ctx, r, tokens)
	if errors.Is(err, batches.ErrEnded) {
		return nil
	}
	if err == nil && b.r.deps.Completions != nil {
		b.r.deps.Completions.ObserveCompletion(a.Spec.Owner, r)
	}
	return err
}

// fail records an item failed for reason.
func (b *run) fail(ctx context.Context, x item, reason *jobs.Error) error {
	a, out, err := b.start(ctx, x)
	if err != nil || out != batches.ItemStarted {
		return err
	}
	err = a.Fail(ctx, reason)
	if errors.Is(err, batches.ErrEnded) {
		return nil
	}
	return err
}

// start starts item x's attempt, as its item task would: the batch's
// script counts it once, or refuses it (a result already, the batch
// cancelling or ended, the budget spent: counted so).
func (b *run) start(ctx context.Context, x item) (*batches.ItemAttempt, batches.ItemOutcome, error) {
	p := jobs.BatchItemPayload{Batch: b.id(), Index: x.index, Round: b.bt.Round, CustomID: x.it.CustomID}
	return b.r.deps.Batches.StartItemTask(ctx, p, batches.OffloadTaskID(b.id()), "")
}

// runFailure is the reason an item's stage failed, named with the
// worker's codes for a live item's (worker/classify.go): only inputs that
// do not fit the program are invalid_payload; the store (Redis) and
// anything unforeseen are internal.
func runFailure(err error) *jobs.Error {
	var (
		pe *program.ParseError
		ae *lmclient.APIError
		rl *lmclient.RateLimitedError
		ce *lmclient.ConfigError
		ie *program.InputError
	)
	code := "internal"
	switch {
	case errors.As(err, &pe):
		code = "parse_error"
	case errors.As(err, &ae):
		return &jobs.Error{Code: "lm_error", Message: err.Error(), Status: ae.Status}
	case errors.As(err, &rl):
		code = "rate_limited"
	case errors.As(err, &ce):
		code = "config_error"
	case errors.Is(err, jobs.ErrProgramVersionGone):
		code = jobs.CodeProgramVersionGone
	case errors.As(err, &ie):
		code = "invalid_payload"
	case errors.Is(err, context.DeadlineExceeded):
		code = "timeout"
	}
	return &jobs.Error{Code: code, Message: err.Error()}
}

// cost prices a stage's calls: the provider's answer at the batch price,
// live fallbacks at the live price.
func (b *run) cost(provider program.Usage, live []program.Usage) batches.ItemCost {
	c := batches.ItemCost{ProviderCalls: 1, LiveCalls: len(live)}
	p := b.r.deps.Prices
	if p == nil {
		c.Unknown = true
		return c
	}
	model := b.r.deps.LM.Model()
	add := func(u program.Usage, batch bool) {
		m, ok1 := p.Cost(model, u, batch)
		l, ok2 := p.Cost(model, u, false)
		c.Micros += m
		c.LiveMicros += l
		c.Unknown = c.Unknown || !ok1 || !ok2
	}
	add(provider, true)
	for _, u := range live {
		add(u, false)
	}
	return c
}
