// Command upload measures one large file going to a host over SSH: ferry's upload stream (a
// gzipped tar into tar -x on the host, through internal/host/ssh) against OpenSSH's scp of the
// same file, side by side on the same real sshd, behind a delay proxy at each round-trip time.
//
//	go run ./bench/upload [-rounds 7] [-mb 10] [-rtt 0,50]
//
// The file is a Go binary's worth of bytes (this command's own executable, repeated up to the
// size): compressible, as the large files of real deploys are. Run as root from the repository
// root; openssh-server must be installed (scripts/install-test-deps).
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-deploy/ferry/bench/internal/benchkit"

	"github.com/skeema/knownhosts"

	"github.com/ferry-deploy/ferry/internal/delayproxy"
	"github.com/ferry-deploy/ferry/internal/host/ssh"
	"github.com/ferry-deploy/ferry/internal/webtest"
)

func main() {
	rounds := flag.Int("rounds", 7, "runs of each measurement")
	mb := flag.Int("mb", 10, "size of the file in MB")
	rtts := flag.String("rtt", "0,50", "round-trip times in ms")
	flag.Parse()
	log.SetFlags(0)
	env := &webtest.Program{}
	defer env.Close()
	work := env.TempDir()
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		log.Fatal(err)
	}
	var body []byte
	for len(body) < *mb<<20 {
		body = append(body, self...)
	}
	body = body[:*mb<<20]
	file := filepath.Join(work, "big.bin")
	benchkit.Must(os.WriteFile(file, body, 0o644))
	var stream bytes.Buffer
	tw := tar.NewWriter(&stream)
	benchkit.Must(tw.WriteHeader(&tar.Header{Name: "big.bin", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg, ModTime: time.Now()}))
	_, err = tw.Write(body)
	benchkit.Must(err)
	benchkit.Must(tw.Close())

	client := webtest.NewSSHClient(env)
	srv := webtest.StartSSHD(env, client, false)
	dest := filepath.Join(work, "dest")
	benchkit.Must(os.MkdirAll(dest, 0o755))
	fmt.Printf("one %d MB file over SSH, %d rounds, medians\n\n| RTT | scp | ferry upload | ferry / scp |\n|---:|---:|---:|---:|\n", *mb, *rounds)
	for _, f := range strings.Split(*rtts, ",") {
		rtt, _ := strconv.Atoi(f)
		proxy, err := delayproxy.Start(env, srv.Addr, time.Duration(rtt)*time.Millisecond/2)
		benchkit.Must(err)
		kh := filepath.Join(work, "known_hosts-"+f)
		benchkit.Must(os.WriteFile(kh, []byte(knownhosts.Line([]string{proxy.Addr()}, srv.HostKey)+"\n"), 0o600))
		_, port, _ := strings.Cut(proxy.Addr(), ":")
		opts := ssh.Options{KnownHostsFile: kh, IdentityFiles: []string{client.KeyFile}, ConfigFile: filepath.Join(work, "no-config")}
		var scpT, ferryT []time.Duration
		for r := range *rounds {
			scp := func() {
				cmd := exec.Command("scp", "-q", "-P", port, "-i", client.KeyFile, "-o", "UserKnownHostsFile="+kh,
					"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", file, "root@127.0.0.1:"+filepath.Join(dest, "scp.bin"))
				start := time.Now()
				if out, err := cmd.CombinedOutput(); err != nil {
					log.Fatalf("scp: %v\n%s", err, out)
				}
				scpT = append(scpT, time.Since(start))
			}
			up := func() {
				os.Remove(filepath.Join(dest, "big.bin"))
				start := time.Now()
				h, err := ssh.Dial(context.Background(), "web1", "root@"+proxy.Addr(), opts)
				benchkit.Must(err)
				if _, err := h.Unpack(context.Background(), dest, bytes.NewReader(stream.Bytes()), "", ""); err != nil {
					log.Fatal(err)
				}
				h.Close()
				ferryT = append(ferryT, time.Since(start))
			}
			if r%2 == 0 {
				scp()
				up()
			} else {
				up()
				scp()
			}
		}
		s, u := benchkit.Median(scpT), benchkit.Median(ferryT)
		fmt.Printf("| %d ms | %d ms | %d ms | %.2f× |\n", rtt, s.Milliseconds(), u.Milliseconds(), float64(u)/float64(s))
		proxy.Close()
	}
	fmt.Println("\nBoth connect anew each time, handshake included.")
}
