module github.com/firma-stack/firma-stack/bindings/go

go 1.21
