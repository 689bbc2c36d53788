module github.com/gracefulgo/walkthrough

go 1.26
