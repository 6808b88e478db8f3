package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ErrHealth is wrapped by every failed health check.
var ErrHealth = errors.New("health check failed")

// Check is the health check of ferry.yaml.
type Check struct {
	URL          string
	ExpectStatus int
	Contains     string // "{{release}}" stands for the release id
	Timeout      time.Duration
	Interval     time.Duration
}

// Response is what the health URL last answered.
type Response struct {
	Status int
	Body   string // the first 2 kB
	Err    error  // when there was no answer
}

func (r *Response) String() string {
	if r == nil {
		return "no response"
	}
	if r.Err != nil {
		return r.Err.Error()
	}
	body := strings.TrimSpace(r.Body)
	if len(body) > 300 {
		body = body[:300] + "…"
	}
	return fmt.Sprintf("HTTP %d: %q", r.Status, body)
}

// HealthError says why a check failed and shows the last response.
type HealthError struct {
	URL  string
	Want string
	Last *Response
}

func (e *HealthError) Error() string {
	return fmt.Sprintf("%s did not answer %s; last response: %s", e.URL, e.Want, e.Last)
}

func (e *HealthError) Unwrap() error { return ErrHealth }

// Poll fetches c.URL through dial until it answers with the expected status and body for
// release, or c.Timeout passes. Each attempt uses a new connection.
func Poll(ctx context.Context, dial func(ctx context.Context, network, addr string) (net.Conn, error), c Check, release string) (*Response, error) {
	want := fmt.Sprintf("status %d", c.ExpectStatus)
	contains := strings.ReplaceAll(c.Contains, "{{release}}", release)
	if contains != "" {
		want += fmt.Sprintf(" with %q in the body", contains)
	}
	client := &http.Client{
		Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true, Proxy: nil},
		Timeout:   min(c.Timeout, 10*time.Second),
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	var last *Response
	for {
		r := fetch(ctx, client, c.URL)
		if r.Err == nil && r.Status == c.ExpectStatus && strings.Contains(r.Body, contains) {
			return r, nil
		}
		// An attempt cut short by the deadline tells less than the answer before it.
		if last == nil || ctx.Err() == nil {
			last = r
		}
		select {
		case <-ctx.Done():
			return last, &HealthError{URL: c.URL, Want: want, Last: last}
		case <-time.After(c.Interval):
		}
	}
}

func fetch(ctx context.Context, client *http.Client, url string) *Response {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return &Response{Err: err}
	}
	req.Header.Set("User-Agent", "ferry-health")
	resp, err := client.Do(req)
	if err != nil {
		return &Response{Err: err}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
	return &Response{Status: resp.StatusCode, Body: string(body)}
}

// Ready waits until the process behind the unix socket answers, within timeout: c's URL path
// sent to the socket when c is set (its status and body as the health check expects), else a
// connection accepted. Every second, alive says whether the process still runs (given why the
// last attempt failed); its error ends the wait at once.
func Ready(ctx context.Context, dial func(ctx context.Context, network, addr string) (net.Conn, error), socket string, c *Check, release string, timeout time.Duration, alive func(ctx context.Context, last error) error) error {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	unixDial := func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx, "unix", socket) }
	var try func() *Response
	want := "a connection"
	where := "unix:" + socket
	if c != nil {
		u, err := url.Parse(c.URL)
		if err != nil {
			return err
		}
		u.Scheme = "http" // the app behind the socket speaks plain HTTP; TLS ends in front of it
		where += ":" + u.RequestURI()
		contains := strings.ReplaceAll(c.Contains, "{{release}}", release)
		want = fmt.Sprintf("status %d", c.ExpectStatus)
		if contains != "" {
			want += fmt.Sprintf(" with %q in the body", contains)
		}
		client := &http.Client{
			Transport:     &http.Transport{DialContext: unixDial, DisableKeepAlives: true, Proxy: nil},
			Timeout:       min(timeout, 10*time.Second),
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
		try = func() *Response {
			r := fetch(ctx, client, u.String())
			if r.Err == nil && (r.Status != c.ExpectStatus || !strings.Contains(r.Body, contains)) {
				r.Err = errWrongAnswer
			}
			return r
		}
	} else {
		try = func() *Response {
			conn, err := unixDial(ctx, "", "")
			if err != nil {
				return &Response{Err: err}
			}
			conn.Close()
			return &Response{}
		}
	}
	var last *Response
	checked := time.Now()
	for {
		r := try()
		if r.Err == nil {
			return nil
		}
		if !errors.Is(r.Err, context.DeadlineExceeded) || last == nil {
			last = r
			if errors.Is(r.Err, errWrongAnswer) {
				last.Err = nil
			}
		}
		if time.Since(checked) >= time.Second && alive != nil {
			checked = time.Now()
			if err := alive(ctx, r.Err); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			if err := parent.Err(); err != nil {
				// Interrupted, not timed out: what the last try met is not why it stopped.
				return fmt.Errorf("interrupted while waiting for %s to answer: %w", where, err)
			}
			if alive != nil {
				if err := alive(context.WithoutCancel(ctx), last.Err); err != nil {
					return err
				}
			}
			return &HealthError{URL: where, Want: want, Last: last}
		case <-time.After(50 * time.Millisecond):
		}
	}
}

var errWrongAnswer = errors.New("wrong answer")
