package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/programs"
)

// The registry's routes (issue 15, item 7): admin keys push programs and
// move aliases; any key lists them. A program's instructions, demos and
// source are an asset (an optimized prompt), shown to admin keys only.
//
//	PUT /v1/programs/{name}                  {"file", "source"?, "state"?} → 201 or 200
//	PUT /v1/programs/{name}/aliases/{alias}  {"version"} → 200
//	GET /v1/programs                         every program: aliases, versions
//	GET /v1/programs/{name}[?version=]       one; admin keys also get "detail"
//
// A push carries the contents of the program file and of the files it
// names, never paths: the server opens nothing it is told to.

// programRoutes registers the registry's routes on /v1.
func (s *Server) programRoutes(v1 *gin.RouterGroup) {
	getRoute(v1, "/programs", s.listPrograms)
	getRoute(v1, "/programs/:name", s.getProgram)
	v1.PUT("/programs/:name", s.pushProgram)
	v1.PUT("/programs/:name/aliases/:alias", s.setAlias)
}

// isProgramsPath reports whether path is one of the registry's, which
// admin keys may call as well as API keys.
func isProgramsPath(path string) bool {
	return path == "/v1/programs" || strings.HasPrefix(path, "/v1/programs/")
}

// isAdmin reports whether the request presents an admin key; with no
// admin keys and no API keys (qa dev) everyone is, as the operator pages
// are open then.
func (s *Server) isAdmin(c *gin.Context) bool {
	if len(s.cfg.AdminAPIKeys) == 0 {
		return s.anonymous()
	}
	_, ok := s.cfg.AdminAPIKeys.Lookup(bearerToken(c.GetHeader("Authorization")))
	return ok
}

func (s *Server) requireAdmin(c *gin.Context) bool {
	if s.isAdmin(c) {
		return true
	}
	s.respond(c, &apiError{status: http.StatusForbidden, code: "forbidden",
		message: "pushing programs and moving aliases needs an admin key (ADMIN_API_KEYS)"})
	return false
}

// resolveProgram resolves a spec's program reference through the registry
// and returns its version and inputs. An unknown program or alias is a
// *jobs.SpecError naming "program" and what is known.
func (s *Server) resolveProgram(ctx context.Context, ref string) (resolvedProgram, error) {
	name, version, err := s.deps.Programs.Resolve(ctx, ref)
	var ue *programs.UnknownError
	if errors.As(err, &ue) {
		known := ue.Known
		if ue.Alias != "" {
			known = make([]string, len(ue.Known))
			for i, a := range ue.Known {
				known[i] = ue.Program + "@" + a
			}
		}
		return resolvedProgram{}, &jobs.SpecError{Field: "program", Problem: jobs.ProblemUnknown, Known: known}
	}
	if err != nil {
		return resolvedProgram{}, err
	}
	inputs, err := s.deps.Programs.Inputs(ctx, name, version)
	if err != nil {
		return resolvedProgram{}, err
	}
	return resolvedProgram{ref: ref, version: version, program: jobs.Program{Name: name, Inputs: inputs}}, nil
}

// pushBody is a push: the program file's contents and those of the source
// and state it names (absent, or null, when it names none).
type pushBody struct {
	File   *string `json:"file"`
	Source *string `json:"source"`
	State  *string `json:"state"`
}

// pushWireLimit is the most a push body may take on the wire for
// PROGRAM_MAX_BYTES of contents: JSON's escapes (a newline or a quote takes
// two bytes) and the object around the three strings.
func pushWireLimit(maxBytes int64) int64 { return 2*maxBytes + 64<<10 }

// decodePush reads a push body: one JSON object with a string "file" and
// optional strings "source" and "state", nothing else. A refusal is an
// *apiError naming the field.
func decodePush(body []byte) (yaml, source, state []byte, err error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var p pushBody
	if err := dec.Decode(&p); err != nil {
		return nil, nil, nil, pushBodyError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, nil, nil, &apiError{status: http.StatusUnprocessableEntity, code: "invalid_json", field: "body",
			message: "the body must be one JSON object: {\"file\", \"source\"?, \"state\"?}"}
	}
	if p.File == nil {
		return nil, nil, nil, &apiError{status: http.StatusUnprocessableEntity, code: "validation_error", field: "file",
			message: "file: required (the program file's YAML, as a string)"}
	}
	part := func(s *string) []byte {
		if s == nil {
			return nil
		}
		return []byte(*s)
	}
	return []byte(*p.File), part(p.Source), part(p.State), nil
}

// pushBodyError words a JSON decoding error of a push body.
func pushBodyError(err error) *apiError {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return &apiError{status: http.StatusUnprocessableEntity, code: "validation_error", field: te.Field,
			message: te.Field + ": must be a string", cause: err}
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		field := strings.Trim(f, `"`)
		if field == "" {
			field = "body" // {"": …} names no field to point at
		}
		return &apiError{status: http.StatusUnprocessableEntity, code: "validation_error", field: field,
			message: field + ": unknown field " + f + " (a push is {\"file\", \"source\"?, \"state\"?})", cause: err}
	}
	return &apiError{status: http.StatusUnprocessableEntity, code: "invalid_json", field: "body",
		message: "request body is not a JSON object {\"file\", \"source\"?, \"state\"?}: " + err.Error(), cause: err}
}

// pushError words a registry's refusal of a push.
func pushError(err error) error {
	var pe *programs.PushError
	if !errors.As(err, &pe) {
		return err
	}
	if pe.Limit != "" {
		return &apiError{status: http.StatusRequestEntityTooLarge, code: "program_too_large", field: pe.Part, message: pe.Error(), cause: err}
	}
	return &apiError{status: http.StatusUnprocessableEntity, code: "invalid_program", field: pe.Part, message: pe.Error(), cause: err}
}

// pushProgram is PUT /v1/programs/{name}: 201 with the version when it is
// new, 200 when it was stored already; latest moves to it either way.
func (s *Server) pushProgram(c *gin.Context) {
	if !s.requireAdmin(c) {
		return
	}
	maxBytes := s.deps.Programs.MaxBytes()
	body, err := readBody(c.Writer, c.Request, pushWireLimit(maxBytes))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		s.respond(c, &apiError{status: http.StatusRequestEntityTooLarge, code: "program_too_large", field: "body", cause: err,
			message: fmt.Sprintf("the push is over %d bytes: its file, source and state may hold PROGRAM_MAX_BYTES (%d) in all", mbe.Limit, maxBytes)})
		return
	}
	if err != nil {
		s.respond(c, err)
		return
	}
	yaml, source, state, err := decodePush(body)
	if err != nil {
		s.respond(c, err)
		return
	}
	b, err := s.deps.Programs.Check(c.Param("name"), yaml, source, state)
	if err != nil {
		s.respond(c, pushError(err))
		return
	}
	ctx, cancel := s.redisCtx(c)
	defer cancel()
	p, err := s.deps.Programs.Push(ctx, b)
	if err != nil {
		s.respond(c, pushError(err))
		return
	}
	status := http.StatusOK
	if p.Created {
		status = http.StatusCreated
	}
	writeJSON(c, status, gin.H{"name": p.Name, "version": p.Version, "alias": programs.DefaultAlias, "created": p.Created, "pruned": nonNil(p.Pruned)})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// setAlias is PUT /v1/programs/{name}/aliases/{alias} {"version"}: the
// version whole, or its first 12 characters or more.
func (s *Server) setAlias(c *gin.Context) {
	if !s.requireAdmin(c) {
		return
	}
	body, err := readBody(c.Writer, c.Request, 4<<10)
	if err != nil {
		s.respond(c, err)
		return
	}
	var req struct {
		Version string `json:"version"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.Version == "" {
		s.respond(c, &apiError{status: http.StatusUnprocessableEntity, code: "validation_error", field: "version",
			message: "version: required, as a string: the body is {\"version\"}"})
		return
	}
	name, alias := c.Param("name"), c.Param("alias")
	ctx, cancel := s.redisCtx(c)
	defer cancel()
	full, err := s.deps.Programs.SetAlias(ctx, name, alias, req.Version)
	switch {
	case errors.Is(err, programs.ErrBadName):
		s.respond(c, &apiError{status: http.StatusUnprocessableEntity, code: "validation_error", field: "alias", message: err.Error(), cause: err})
		return
	case errors.Is(err, programs.ErrNoVersion):
		s.respond(c, &apiError{status: http.StatusUnprocessableEntity, code: "validation_error", field: "version", message: err.Error(), cause: err})
		return
	case err != nil:
		s.respond(c, err)
		return
	}
	writeJSON(c, http.StatusOK, gin.H{"name": name, "alias": alias, "version": full})
}

// listPrograms is GET /v1/programs.
func (s *Server) listPrograms(c *gin.Context) {
	ctx, cancel := s.redisCtx(c)
	defer cancel()
	list, err := s.deps.Programs.List(ctx)
	if err != nil {
		s.respond(c, err)
		return
	}
	writeJSON(c, http.StatusOK, gin.H{"programs": list})
}

// getProgram is GET /v1/programs/{name}: its aliases and versions; for an
// admin key also "detail", the version ?version= names (an alias or a
// version; default latest) with its instructions, demos, file, source and
// state.
func (s *Server) getProgram(c *gin.Context) {
	name := c.Param("name")
	ctx, cancel := s.redisCtx(c)
	defer cancel()
	l, err := s.deps.Programs.Get(ctx, name)
	if errors.Is(err, programs.ErrNotPushed) {
		s.respond(c, errNotFound("program "+name))
		return
	}
	if err != nil {
		s.respond(c, err)
		return
	}
	if !s.isAdmin(c) {
		writeJSON(c, http.StatusOK, l)
		return
	}
	version := c.DefaultQuery("version", programs.DefaultAlias)
	if v, ok := l.Aliases[version]; ok {
		version = v
	}
	d, err := s.deps.Programs.Detail(ctx, name, version)
	if errors.Is(err, jobs.ErrProgramVersionGone) {
		s.respond(c, &apiError{status: http.StatusNotFound, code: "not_found", field: "version",
			message: fmt.Sprintf("program %s has no version or alias %q", name, version)})
		return
	}
	if err != nil {
		s.respond(c, err)
		return
	}
	writeJSON(c, http.StatusOK, struct {
		programs.Listing
		Detail programs.Detail `json:"detail"`
	}{l, d})
}
