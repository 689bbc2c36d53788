//go:build !linux

package proctree

func becomeSubreaper() error { return ErrUnsupported }
