// Command app is the example app server of examples/app: a small HTTP server that ferry runs
// once per release behind <root>/app.sock (switch: socket in ferry.yaml).
//
// It serves on the unix socket $FERRY_SOCKET, or on the TCP port $PORT (with SO_REUSEPORT, so
// that a new process can bind the port while the old one still serves: see handoff.sh). On
// SIGTERM it stops accepting, finishes the requests in flight and exits: what lets ferry swap
// releases without dropping a request.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	version := strings.TrimSpace(readFile("VERSION", os.Getenv("FERRY_RELEASE")))
	release := os.Getenv("FERRY_RELEASE")

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html>\n<meta name=\"release\" content=\"%s\">\n<p>Hello from release %s (pid %d).\n", version, release, os.Getpid())
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "ok %s\n", release)
	})
	// /slow?ms=2000 answers after that long: a request in flight across a deploy.
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		log.Printf("slow request: %d ms", ms)
		time.Sleep(time.Duration(ms) * time.Millisecond)
		fmt.Fprintf(w, "<meta name=\"release\" content=\"%s\">\nslept %d ms\n", version, ms)
	})

	ln, err := listen()
	if err != nil {
		log.Fatal(err)
	}
	// Connections accepted whose first request is not read yet: Shutdown would close them
	// without an answer (net/http drops a request it reads once shutdown began).
	var mu sync.Mutex
	fresh := map[net.Conn]bool{}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ConnState: func(c net.Conn, st http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		if st == http.StateNew {
			fresh[c] = true
		} else {
			delete(fresh, c)
		}
	}}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	if os.Getenv("APP_IGNORE_TERM") != "" {
		signal.Ignore(syscall.SIGTERM) // for ferry's tests: a process that will not stop
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Printf("release %s serves on %s", release, ln.Addr())
	select {
	case err := <-served:
		log.Fatal(err)
	case sig := <-stop:
		// Behind a load balancer that takes a while to stop sending, keep serving a little.
		if d, err := time.ParseDuration(os.Getenv("SHUTDOWN_DELAY")); err == nil {
			log.Printf("%v: serving %v more", sig, d)
			time.Sleep(d)
		}
		log.Printf("%v: finishing the requests in flight", sig)
	}
	// Stop accepting first (closing a unix listener removes its socket file: nothing new can
	// reach this process), let the connections already accepted have their request read (at
	// most 2 s), then finish the requests in flight. Keep it under ferry's drain (30 s by
	// default), after which ferry kills the process.
	ln.Close()
	if err := <-served; err != nil && !errors.Is(err, net.ErrClosed) {
		log.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		mu.Lock()
		n := len(fresh)
		mu.Unlock()
		if n == 0 {
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Fatal(err)
	}
}

// listen opens $FERRY_SOCKET, or $PORT on loopback with SO_REUSEPORT.
func listen() (net.Listener, error) {
	if sock := os.Getenv("FERRY_SOCKET"); sock != "" {
		os.Remove(sock) // a socket left by a process of this release that was killed
		ln, err := net.Listen("unix", sock)
		if err != nil {
			return nil, err
		}
		// The web server (nginx as www-data) connects to it: anyone who can reach the
		// directory may. Use 0660 and a shared group to narrow that.
		return ln, os.Chmod(sock, 0o666)
	}
	port := os.Getenv("PORT")
	if port == "" {
		return nil, errors.New("set FERRY_SOCKET (ferry does, for switch: socket) or PORT")
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		})
		return errors.Join(err, serr)
	}}
	return lc.Listen(context.Background(), "tcp", "127.0.0.1:"+port)
}

func readFile(name, fallback string) string {
	b, err := os.ReadFile(name)
	if err != nil {
		return fallback
	}
	return string(b)
}
