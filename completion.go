package main

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
)

// completionCommand is crs completion bash|zsh|fish: a shell's completion
// of the commands and their flags, made from the same definitions as the
// CLI itself, for crs, crsdump and crsload.
func completionCommand() *cli.Command {
	return &cli.Command{
		Name:         "completion",
		Usage:        "print shell completion for crs, crsdump and crsload: bash, zsh or fish",
		UsageText:    "source <(crs completion bash)\ncrs completion fish > ~/.config/fish/completions/crs.fish",
		OnUsageError: onUsage,
		Action: func(c *cli.Context) error {
			shell := c.Args().First()
			switch shell {
			case "bash":
				return bashCompletion(c.App, c.App.Writer, false)
			case "zsh":
				return bashCompletion(c.App, c.App.Writer, true)
			case "fish":
				s, err := c.App.ToFishCompletion()
				if err != nil {
					return err
				}
				_, err = io.WriteString(c.App.Writer, s)
				return err
			}
			return usageError{fmt.Errorf("completion for %q: give bash, zsh or fish", shell)}
		},
	}
}

// manCommand is crs man: the manual page, in roff, from the same
// definitions (make man writes it to bin/crs.1).
func manCommand() *cli.Command {
	return &cli.Command{
		Name:  "man",
		Usage: "print the manual page (roff)",
		Action: func(c *cli.Context) error {
			s, err := c.App.ToMan()
			if err != nil {
				return err
			}
			_, err = io.WriteString(c.App.Writer, s)
			return err
		},
	}
}

// bashCompletion writes a bash completion function of every command and
// its flags; zsh runs it through bashcompinit.
func bashCompletion(app *cli.App, w io.Writer, zsh bool) error {
	var b strings.Builder
	if zsh {
		b.WriteString("#compdef crs crsdump crsload\nautoload -U +X bashcompinit && bashcompinit\n")
	}
	var names []string
	for _, c := range app.Commands {
		if !c.Hidden {
			names = append(names, c.Name)
		}
	}
	sort.Strings(names)
	fmt.Fprintf(&b, `_crs() {
  local cur=${COMP_WORDS[COMP_CWORD]} prog=${COMP_WORDS[0]##*/} cmd=${COMP_WORDS[1]}
  case "$prog" in
    crsdump) cmd=dump ;;
    crsload) cmd=load ;;
    *) if [[ $COMP_CWORD -eq 1 ]]; then COMPREPLY=($(compgen -W "%s" -- "$cur")); return; fi ;;
  esac
  local opts=""
  case "$cmd" in
`, strings.Join(names, " "))
	for _, c := range app.Commands {
		var flags []string
		for _, f := range c.Flags {
			for _, n := range f.Names() {
				if len(n) == 1 {
					flags = append(flags, "-"+n)
				} else {
					flags = append(flags, "--"+n)
				}
			}
		}
		flags = append(flags, "--help")
		fmt.Fprintf(&b, "    %s) opts=%q ;;\n", c.Name, strings.Join(flags, " "))
	}
	b.WriteString(`  esac
  if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W "$opts" -- "$cur")); else COMPREPLY=($(compgen -f -- "$cur")); fi
}
complete -o default -F _crs crs crsdump crsload
`)
	_, err := io.WriteString(w, b.String())
	return err
}
