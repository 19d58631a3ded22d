package api

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"
)

// queryParam is a query parameter a /v1 POST route takes: its name and,
// when it takes one of a fixed set, its values (nil: its handler checks
// the value).
type queryParam struct {
	name   string
	values []string
}

// maxQueryParams is the most parameters a route declares (checkQuery
// counts repeats in an array of this size, on the stack).
const maxQueryParams = 4

// checkQuery refuses, 422 naming the parameter, a request whose query has
// one the route does not take, one given twice, or a value outside its
// fixed set. Ignored, a misspelt ?no_cach=true or ?mode=provder would run
// the request otherwise than asked. The seed's endpoints do not use it:
// FastAPI ignores a query parameter an endpoint does not declare.
func (s *Server) checkQuery(params ...queryParam) gin.HandlerFunc {
	if len(params) > maxQueryParams {
		panic("api: checkQuery: more than maxQueryParams parameters")
	}
	return func(c *gin.Context) {
		if c.Request.URL.RawQuery == "" {
			return // the usual request: nothing to parse
		}
		if err := queryProblem(c.Request.URL.RawQuery, params); err != nil {
			s.respond(c, err)
			c.Abort()
		}
	}
}

// queryProblem is what is wrong with raw, a request's query, for a route
// that takes params; nil when nothing is.
func queryProblem(raw string, params []queryParam) *apiError {
	var seen [maxQueryParams]int
	for pair := range strings.SplitSeq(raw, "&") {
		if pair == "" {
			continue
		}
		key, value, _ := strings.Cut(pair, "=")
		name, err := url.QueryUnescape(key)
		if err != nil {
			name = key
		}
		k := -1
		for i, p := range params {
			if p.name == name {
				k = i
				break
			}
		}
		if k < 0 {
			return queryError(name, fmt.Sprintf("unknown query parameter %q: this endpoint takes %s", name, paramNames(params)))
		}
		if seen[k]++; seen[k] > 1 {
			return queryError(name, fmt.Sprintf("query parameter %s is given more than once: give it once", name))
		}
		p := params[k]
		if p.values == nil {
			continue
		}
		v, err := url.QueryUnescape(value)
		if err == nil && slices.Contains(p.values, v) {
			continue
		}
		return queryError(name, fmt.Sprintf("%s must be %s, got %q", name, strings.Join(p.values, " or "), v))
	}
	return nil
}

func queryError(field, message string) *apiError {
	return &apiError{status: http.StatusUnprocessableEntity, code: "validation_error", field: field, message: message}
}

// paramNames lists params for a message: "a, b, c", or "none".
func paramNames(params []queryParam) string {
	if len(params) == 0 {
		return "none"
	}
	names := make([]string, len(params))
	for i, p := range params {
		names[i] = p.name
	}
	return strings.Join(names, ", ")
}
