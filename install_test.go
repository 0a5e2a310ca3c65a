package main_test

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crs-tool/crs/internal/e2e"
)

// TestInstallAsREADMESays runs the README's install block as written, in
// a new HOME, and checks what it installed: crs, crsdump and crsload that
// answer, static (no ELF interpreter: no C library needed), and the three
// manual pages. The README copied bin/crsdump and bin/crsload, then ran
// crs, which it had not installed (exit 127).
func TestInstallAsREADMESays(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "\n## Install\n")
	if !ok {
		t.Fatal("README has no Install section")
	}
	_, block, ok := strings.Cut(after, "```sh\n")
	if !ok {
		t.Fatal("README's Install section has no sh block")
	}
	block, _, _ = strings.Cut(block, "```")
	home := t.TempDir()
	cmd := exec.Command("bash", "-e", "-c", block)
	cmd.Env = append(os.Environ(), "HOME="+home, "BINDIR="+filepath.Join(home, "build"))
	if gopath, err := exec.Command("go", "env", "GOPATH", "GOCACHE", "GOMODCACHE").Output(); err == nil {
		// The new HOME must not send go to an empty cache.
		v := strings.Fields(string(gopath))
		cmd.Env = append(cmd.Env, "GOPATH="+v[0], "GOCACHE="+v[1], "GOMODCACHE="+v[2])
	}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "crs ") {
		t.Fatalf("the README's install block: %v:\n%s", err, out)
	}
	prefix := filepath.Join(home, ".local")
	for _, name := range []string{"crs", "crsdump", "crsload"} {
		if out, err := exec.Command(filepath.Join(prefix, "bin", name), "--version").CombinedOutput(); err != nil || !strings.HasPrefix(string(out), name+" ") {
			t.Errorf("%s --version: %v: %s", name, err, out)
		}
		page, err := os.ReadFile(filepath.Join(prefix, "share", "man", "man1", name+".1"))
		if err != nil || !strings.Contains(string(page), ".TH "+name+" 1") || !strings.Contains(string(page), ".SH EXIT STATUS") || !strings.Contains(string(page), ".SH EXAMPLES") {
			t.Errorf("manual page of %s: %v\n%.300s", name, err, page)
		}
	}
	f, err := elf.Open(filepath.Join(prefix, "bin", "crs"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("crs is linked dynamically (it has an ELF interpreter)")
		}
	}
}

// TestDemo runs the demo, the README's first command (make demo runs
// it), as a newcomer would: it starts its own servers, moves the
// keyspace, checks the stats and verify of both sides, and the cluster
// leg; it exits non-zero on any difference.
func TestDemo(t *testing.T) {
	bin := e2e.Binaries(t)
	cmd := exec.Command("go", "run", "./internal/cmd/demo", "-bin", bin, "-keys", "3000")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the demo: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "the cluster holds what the source held") {
		t.Errorf("the demo did not reach its end:\n%s", out)
	}
}
