module github.com/firma-stack/firma-stack/bench/go

go 1.21

require github.com/firma-stack/firma-stack/bindings/go v0.0.0

replace github.com/firma-stack/firma-stack/bindings/go => ../../bindings/go
