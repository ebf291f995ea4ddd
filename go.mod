module github.com/certmill/certmill

go 1.26.8

require (
	github.com/ThalesGroup/crypto11 v1.6.2
	github.com/goccy/go-yaml v1.19.2
	github.com/miekg/pkcs11 v1.1.2
	github.com/thales-e-security/pool v0.0.2
)

require (
	github.com/pkg/errors v0.9.1 // indirect
	github.com/stretchr/testify v1.12.1 // indirect
)
