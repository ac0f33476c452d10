module modelwerk.io/hack/node/pause

go 1.26.0
