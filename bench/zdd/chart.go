package main

import (
	"fmt"
	"os"
	"strings"
)

// writeChart draws errors per deploy per tool as grouped bars in an SVG file.
func writeChart(path, title string, outcomes []outcome, deploys int) error {
	const w, h, left, bottom, top = 900, 340, 50, 40, 48
	maxErr := 1
	for _, o := range outcomes {
		for _, n := range o.perDeploy {
			maxErr = max(maxErr, n)
		}
	}
	colors := []string{"#2b8a3e", "#e8590c", "#c92a2a", "#1971c2"}
	plotW, plotH := float64(w-left-20), float64(h-top-bottom)
	group := plotW / float64(deploys)
	bar := group / float64(len(outcomes)+1)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="16" font-size="14">%s</text>`+"\n", left, title)
	for i := 0; i <= 4; i++ {
		v := maxErr * i / 4
		y := float64(h-bottom) - plotH*float64(v)/float64(maxErr)
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%d</text>`+"\n", left, w-20, y, y, left-6, y+4, v)
	}
	for i, o := range outcomes {
		for d, n := range o.perDeploy {
			if n == 0 {
				continue
			}
			x := float64(left) + group*float64(d) + bar*float64(i) + bar/2
			bh := plotH * float64(n) / float64(maxErr)
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", x, float64(h-bottom)-bh, bar, bh, colors[i%len(colors)])
		}
	}
	for d := 0; d < deploys; d += 5 {
		x := float64(left) + group*float64(d) + group/2
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%d</text>`+"\n", x, h-bottom+16, d+1)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">deploy</text>`+"\n", left+int(plotW/2), h-6)
	for i, o := range outcomes {
		total := o.sum.ConnErrors + o.sum.Non2xx + o.sum.Broken + o.slowCut
		x := left + 10 + i*(w-left)/len(outcomes)
		fmt.Fprintf(&b, `<rect x="%d" y="24" width="10" height="10" fill="%s"/><text x="%d" y="33">%s: %d in total</text>`+"\n", x, colors[i%len(colors)], x+14, o.tool, total)
	}
	b.WriteString("</svg>\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
