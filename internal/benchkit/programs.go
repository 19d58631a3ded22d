package benchkit

import (
	"context"
	"net/http"
	"net/url"

	"github.com/qaqueue/qaqueue/programfile"
)

// Pushed is the answer to a push: the program's name and its version.
type Pushed struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Created bool   `json:"created"`
}

// Push is PUT /v1/programs/{name} with b's file, source and state as
// contents, as `qa programs push` sends them; the client's Token must be an
// admin key (unless the API runs with no keys at all). It expects a new
// version (201): a bench pushes into a fresh database.
func (c *Client) Push(ctx context.Context, b *programfile.Bundle) (Pushed, error) {
	body := map[string]string{"file": string(b.YAML)}
	if b.File.Source != "" {
		body["source"] = string(b.Source)
	}
	if b.File.State != "" {
		body["state"] = string(b.State)
	}
	var p Pushed
	err := c.Do(ctx, http.MethodPut, "/v1/programs/"+url.PathEscape(b.File.Name), body, http.StatusCreated, &p)
	return p, err
}

// SetAlias is PUT /v1/programs/{name}/aliases/{alias} {"version"}: it
// points alias at version (an admin key's call, as Push).
func (c *Client) SetAlias(ctx context.Context, name, alias, version string) error {
	return c.Do(ctx, http.MethodPut, "/v1/programs/"+url.PathEscape(name)+"/aliases/"+url.PathEscape(alias),
		map[string]string{"version": version}, http.StatusOK, nil)
}
