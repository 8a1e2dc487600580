//go:build wasip1

// Command chat is a placeholder being written; see samples/chat/README.md.
package main

func main() {}
