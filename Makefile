GO ?= go
STATICCHECK_VERSION ?= v0.6.1

.PHONY: build demo test vet staticcheck bench fuzz golden

build:
	$(GO) build -o bin/ecscorr ./cmd/ecscorr

demo: build
	./bin/ecscorr replay --format table testdata/demo

vet:
	$(GO) vet ./...

staticcheck:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

test: vet staticcheck
	$(GO) test -race -shuffle=on ./...
