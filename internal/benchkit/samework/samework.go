// Package samework is the bench's same-work baseline: the service a user
// would write in an afternoon with qaqueue's own parts, so that qaqueue's
// throughput is measured against a peer that does the same work (HTTP in,
// a queue, the same LM call, the result in Redis, a long-poll out) rather
// than against an empty asynq task.
//
// The API is gin: POST /v1/jobs enqueues an asynq task and answers its id;
// GET /v1/jobs/:id?wait= subscribes to the job's channel, reads its result key
// and, if it is not there yet, waits for the notice. The worker is a default
// asynq server polling every 5 ms whose handler runs program's QA program
// (the same prompt bytes as qaqueue's default program) through openai-go,
// then stores the result JSON in one key and publishes a notice. It keeps no
// job record, no events, no idempotency, no budgets: what qaqueue does on
// top is what the comparison prices.
package samework

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hibiken/asynq"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/redis/go-redis/v9"

	"github.com/qaqueue/qaqueue/program"
)

// Names in Redis and asynq.
const (
	queue    = "samework"
	taskType = "qa"
	// resultTTL keeps a result for its long-polls and a while after.
	resultTTL = time.Hour
	// maxWait bounds a long-poll, as qaqueue's JOBS_MAX_WAIT does.
	maxWait = 60 * time.Second
)

func resultKey(id string) string   { return "samework:result:" + id }
func doneChannel(id string) string { return "samework:done:" + id }

// Ask is the body of POST /v1/jobs and the task's payload.
type Ask struct {
	Question string `json:"question"`
}

// Answer is what GET /v1/jobs/:id answers: the status, and the result once the
// job ran.
type Answer struct {
	ID     string          `json:"id"`
	Status string          `json:"status"` // "pending" or "completed"
	Result json.RawMessage `json:"result,omitempty"`
}

// NewAPI is the baseline's HTTP API on rdb.
func NewAPI(rdb *redis.Client) http.Handler {
	client := asynq.NewClientFromRedisClient(rdb)
	r := gin.New()
	r.GET("/readyz", func(c *gin.Context) { c.Status(http.StatusOK) })
	r.POST("/v1/jobs", func(c *gin.Context) {
		var ask Ask
		if err := c.ShouldBindJSON(&ask); err != nil || ask.Question == "" {
			c.JSON(http.StatusUnprocessableEntity, gin.H{"error": "question is required"})
			return
		}
		payload, _ := json.Marshal(ask) // a struct of one string
		id := newID()
		if _, err := client.EnqueueContext(c.Request.Context(), asynq.NewTask(taskType, payload), asynq.Queue(queue), asynq.TaskID(id)); err != nil {
			c.JSON(http.StatusServiceUnavailable, gin.H{"error": err.Error()})
			return
		}
		c.JSON(http.StatusAccepted, Answer{ID: id, Status: "pending"})
	})
	r.GET("/v1/jobs/:id", func(c *gin.Context) {
		id := c.Param("id")
		wait, _ := time.ParseDuration(c.Query("wait"))
		res, err := waitResult(c.Request.Context(), rdb, id, min(wait, maxWait))
		switch {
		case err != nil:
			c.JSON(http.StatusServiceUnavailable, gin.H{"error": err.Error()})
		case res == nil:
			c.JSON(http.StatusOK, Answer{ID: id, Status: "pending"})
		default:
			c.JSON(http.StatusOK, Answer{ID: id, Status: "completed", Result: res})
		}
	})
	return r
}

// waitResult is the job's result, waiting up to wait for it: subscribe
// first, then read, so a notice published between the two is not missed.
// Nil when the job has not ended within wait.
func waitResult(ctx context.Context, rdb *redis.Client, id string, wait time.Duration) (json.RawMessage, error) {
	if wait <= 0 {
		return getResult(ctx, rdb, id)
	}
	sub := rdb.Subscribe(ctx, doneChannel(id))
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil { // the subscription's confirmation
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	if res, err := getResult(ctx, rdb, id); res != nil || err != nil {
		return res, err
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-sub.Channel():
		return getResult(ctx, rdb, id)
	case <-t.C:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func getResult(ctx context.Context, rdb *redis.Client, id string) (json.RawMessage, error) {
	b, err := rdb.Get(ctx, resultKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read result: %w", err)
	}
	return b, nil
}

// NewWorker is the baseline's asynq server with concurrency slots on rdb,
// running the QA program against the OpenAI-compatible LM at lmBase. Start
// it with Run or Start.
func NewWorker(rdb *redis.Client, lmBase string, concurrency int) (*asynq.Server, asynq.Handler) {
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency: concurrency, Queues: map[string]int{queue: 1},
		TaskCheckInterval: 5 * time.Millisecond, LogLevel: asynq.WarnLevel,
	})
	h := &handler{rdb: rdb, qa: program.NewQA(), lm: newLM(lmBase)}
	return srv, asynq.HandlerFunc(h.process)
}

type handler struct {
	rdb *redis.Client
	qa  *program.Program
	lm  program.LM
}

func (h *handler) process(ctx context.Context, t *asynq.Task) error {
	var ask Ask
	if err := json.Unmarshal(t.Payload(), &ask); err != nil {
		return fmt.Errorf("decode task: %w: %w", err, asynq.SkipRetry)
	}
	res, err := h.qa.Run(ctx, h.lm, map[string]any{"question": ask.Question}, &program.RunOptions{NoCache: true})
	if err != nil {
		return fmt.Errorf("run qa: %w", err)
	}
	b, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	id := t.ResultWriter().TaskID()
	if _, err := h.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, resultKey(id), b, resultTTL)
		p.Publish(ctx, doneChannel(id), "done")
		return nil
	}); err != nil {
		return fmt.Errorf("store result: %w", err)
	}
	return nil
}

// lm is program.LM over openai-go, with no cache: one call per Complete.
type lm struct {
	chat openai.ChatCompletionService
}

func newLM(base string) *lm {
	c := openai.NewClient(option.WithBaseURL(base), option.WithAPIKey("x"), option.WithMaxRetries(0))
	return &lm{chat: c.Chat.Completions}
}

func (*lm) Model() string { return "openai/gpt-4o-mini" }

func (l *lm) Complete(ctx context.Context, req *program.Request) (*program.Completion, error) {
	p := openai.ChatCompletionNewParams{Model: "gpt-4o-mini", Messages: make([]openai.ChatCompletionMessageParamUnion, len(req.Messages))}
	for i, m := range req.Messages {
		switch m.Role {
		case "system":
			p.Messages[i] = openai.SystemMessage(m.Content)
		case "assistant":
			p.Messages[i] = openai.AssistantMessage(m.Content)
		default:
			p.Messages[i] = openai.UserMessage(m.Content)
		}
	}
	res, err := l.chat.New(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("call lm: %w", err)
	}
	if len(res.Choices) == 0 {
		return nil, errors.New("call lm: no choices")
	}
	return &program.Completion{Text: res.Choices[0].Message.Content, FinishReason: string(res.Choices[0].FinishReason)}, nil
}

func (*lm) Accept(context.Context, *program.Request, *program.Completion) error { return nil }

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
