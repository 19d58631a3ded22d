package offload

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/lmclient"
	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/programrun"
)

// pageSize is how many items a render reads from Redis at a time.
const pageSize = 500

// item is one item of the round: its index, stored item, the stages it
// finished, and the attempt its stage starts at.
type item struct {
	index   int
	it      *jobs.BatchItem
	done    []jobs.Checkpoint
	attempt int
}

// items calls fn with each item of [from, to) the round runs, in index
// order: without a result, and either deferred to this round (a fallback
// round) or having finished exactly the stages before the round's.
func (b *run) items(ctx context.Context, from, to int, fn func(item) error) error {
	bs := b.r.deps.Batches
	for lo := from; lo < to; lo += pageSize {
		hi := min(lo+pageSize, to)
		if b.st.Fallback && !b.anyDeferred(lo, hi) {
			continue
		}
		results, its, err := b.page(ctx, lo, hi)
		if err != nil {
			return err
		}
		var done [][]jobs.Checkpoint
		if b.multi() {
			if done, err = bs.Stages(ctx, b.id(), lo, hi); err != nil {
				return err
			}
		}
		for i := range hi - lo {
			if results[i] != "" || its[i] == nil {
				continue
			}
			x := item{index: lo + i, it: its[i]}
			if done != nil {
				x.done = done[i]
			}
			if b.st.Fallback {
				a, ok := b.deferred[x.index]
				if !ok {
					continue
				}
				x.attempt = a
			}
			if len(x.done) != b.st.Stage {
				continue
			}
			if err := fn(x); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *run) anyDeferred(lo, hi int) bool {
	if hi-lo <= len(b.deferred) {
		for i := lo; i < hi; i++ {
			if _, ok := b.deferred[i]; ok {
				return true
			}
		}
		return false
	}
	for i := range b.deferred {
		if i >= lo && i < hi {
			return true
		}
	}
	return false
}

// inputs are x's inputs to the round's stage.
func (b *run) inputs(x item) (map[string]any, error) {
	done := make(map[string]*programrun.Stage, len(x.done))
	for _, cp := range x.done {
		st, err := programrun.Resumed(cp)
		if err != nil {
			return nil, err
		}
		done[st.Key] = st
	}
	return programrun.Inputs(b.stages()[b.st.Stage], x.it.Inputs, done), nil
}

func (b *run) runOptions(attempt int) *program.RunOptions {
	return &program.RunOptions{NoCache: b.bt.Spec.Options.NoCache, Priority: program.PriorityBatch, FromAttempt: attempt}
}

// render renders the round's items of [from, to) and calls emit with each
// one's batch line (no newline). An item the LM cache answers is recorded
// at once (path cache), one that cannot run fails; neither is emitted. It
// returns how many the cache answered.
func (b *run) render(ctx context.Context, from, to int, emit func(index int, line []byte) error) (cached int, err error) {
	key := b.stages()[b.st.Stage].Key
	err = b.items(ctx, from, to, func(x item) error {
		in, err := b.inputs(x)
		if err != nil {
			return err
		}
		lm := &capturingLM{lm: b.r.deps.LM}
		res, err := b.c.Program.RunStage(ctx, lm, key, in, b.runOptions(x.attempt))
		switch {
		case err == nil:
			cached++
			b.r.deps.Metrics.request(jobs.PathCache, 1)
			return b.record(ctx, x, res, jobs.PathCache, new(int64)) // the cache costs nothing
		case errors.Is(err, errCaptured):
			line, err := b.r.deps.LM.BatchLine(customID(x.index, x.attempt+lm.calls-1), lm.req)
			if err != nil {
				return fmt.Errorf("render item %d: %w", x.index, err)
			}
			return emit(x.index, line)
		case ctx.Err() != nil:
			return ctx.Err()
		default:
			b.r.deps.Metrics.request("failed", 1)
			return b.fail(ctx, x, runFailure(err))
		}
	})
	return cached, err
}

// customID names an item's request in the provider's files: its index and
// the attempt the request is, which its replay starts at.
func customID(index, attempt int) string {
	return "qa-" + strconv.Itoa(index) + "-" + strconv.Itoa(attempt)
}

// parseCustomID reads a custom_id customID wrote; any other spelling of
// the same numbers ("qa-01-0", "qa-+1-0") is not one, so not ours.
func parseCustomID(s string) (index, attempt int, ok bool) {
	rest, ok := strings.CutPrefix(s, "qa-")
	if !ok {
		return 0, 0, false
	}
	i, a, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, 0, false
	}
	index, err1 := strconv.Atoi(i)
	attempt, err2 := strconv.Atoi(a)
	ok = err1 == nil && err2 == nil && index >= 0 && attempt >= 0 && customID(index, attempt) == s
	return index, attempt, ok
}

// plan renders the round once to cut it into chunks within the
// provider's limits, and records them with the round: a chunk is an index
// range, so its upload (or a re-upload after a crash) renders the same
// lines. A round with nothing to send moves on at once.
func (b *run) plan(ctx context.Context) error {
	var (
		chunks []batches.OffloadChunk
		cur    *batches.OffloadChunk
		last   int
	)
	cached, err := b.render(ctx, 0, b.bt.Counts.Total, func(index int, line []byte) error {
		n := int64(len(line) + 1)
		if cur != nil && (cur.Requests+1 > b.r.cfg.MaxRequests || cur.Bytes+n > b.r.cfg.MaxBytes) {
			cur.To = index
			chunks = append(chunks, *cur)
			cur = nil
		}
		if cur == nil {
			cur = &batches.OffloadChunk{From: index}
		}
		cur.Requests++
		cur.Bytes += n
		last = index
		return nil
	})
	if err != nil {
		return err
	}
	if cur != nil {
		cur.To = last + 1
		chunks = append(chunks, *cur)
	}
	b.st.Cached += cached
	b.st.Phase = jobs.ProviderUploading
	if err := b.r.deps.Batches.PlanOffloadRound(ctx, b.id(), b.st, chunks); err != nil {
		return err
	}
	b.st.Planned, b.st.Chunks, b.chunks = true, len(chunks), chunks
	b.log.Info().Int("round", b.st.Round).Int("stage", b.st.Stage).Int("chunks", len(chunks)).Int("cached", cached).
		Msg("provider round planned")
	_ = b.publish(ctx, nil) // best effort: the next write corrects it
	return nil
}

// upload uploads chunk k's file unless it has one: the provider's file of
// that name if there is one (uploaded by a runner that died before
// recording it), else the chunk's lines rendered again and streamed up as
// they come through a pipe, never whole in memory.
func (b *run) upload(ctx context.Context, k int) error {
	ch := &b.chunks[k]
	if ch.FileID != "" {
		return nil
	}
	name := b.fileName(k)
	f, err := b.r.deps.Provider.FindFile(ctx, name)
	if err != nil {
		return fmt.Errorf("find file %s: %w", name, err)
	}
	if f == nil {
		if f, err = b.stream(ctx, name, ch.From, ch.To); err != nil {
			return fmt.Errorf("upload file %s: %w", name, err)
		}
	}
	ch.FileID = f.ID
	return b.saveChunk(ctx, k)
}

// stream renders items [from, to) into the provider's upload of file name.
func (b *run) stream(ctx context.Context, name string, from, to int) (*lmclient.ProviderFile, error) {
	pr, pw := io.Pipe()
	done := make(chan struct{})
	// Cancelled when the upload ends: a render between two writes (items
	// the cache answers write nothing) stops then too.
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		defer close(done)
		w := bufio.NewWriterSize(pw, 64<<10)
		_, err := b.render(rctx, from, to, func(_ int, line []byte) error {
			if _, err := w.Write(line); err != nil {
				return err
			}
			return w.WriteByte('\n')
		})
		if err == nil {
			err = w.Flush()
		}
		pw.CloseWithError(err) // nil: the upload reads EOF
	}()
	f, err := b.r.deps.Provider.UploadFile(ctx, name, pr)
	// An upload that ended early must not leave the render blocked on the
	// pipe, nor rendering on.
	pr.CloseWithError(errors.New("upload ended"))
	cancel()
	<-done
	return f, err
}

// create creates chunk k's provider batch unless it has one: first the
// provider's batch tagged with the chunk's metadata, if there is one (a
// runner died between creating it and recording it), so that no second,
// billed batch is made.
func (b *run) create(ctx context.Context, k int) error {
	ch := &b.chunks[k]
	if ch.BatchID != "" {
		return nil
	}
	meta := b.metadata(k)
	pb, err := b.find(ctx, k)
	if err != nil {
		return err
	}
	if pb == nil {
		if !ch.Creating {
			ch.Creating = true
			if err := b.saveChunk(ctx, k); err != nil {
				return err
			}
		}
		if pb, err = b.r.deps.Provider.CreateBatch(ctx, ch.FileID, meta); err != nil {
			return fmt.Errorf("create provider batch of chunk %d: %w", k, err)
		}
	} else {
		b.log.Info().Str("provider_batch", pb.ID).Int("chunk", k).Msg("adopted a provider batch created before a restart")
	}
	ch.BatchID, ch.Status = pb.ID, pb.Status
	if err := b.saveChunk(ctx, k); err != nil {
		return err
	}
	_ = b.publish(ctx, nil) // best effort: the next write corrects it
	return nil
}

// find is chunk k's provider batch as the provider lists it (nil: none to
// adopt): the one a runner created and died before recording.
func (b *run) find(ctx context.Context, k int) (*lmclient.ProviderBatch, error) {
	pb, err := b.r.deps.Provider.FindBatch(ctx, b.metadata(k))
	if err != nil {
		return nil, fmt.Errorf("find provider batch of chunk %d: %w", k, err)
	}
	if pb != nil && pb.Status == "failed" {
		// Refused (its enqueued-token limit, most likely): the chunk is
		// sent again, not adopted.
		return nil, nil
	}
	return pb, nil
}
