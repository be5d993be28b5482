// Package oip is the gRPC Open Inference Protocol v2: Go code generated
// (make proto) from KServe's grpc_predict_v2.proto, service
// inference.GRPCInferenceService, which package inference serves on its
// HTTP port and which clients and tests call with NewGRPCInferenceServiceClient.
// Do not edit the .pb.go files; edit nothing in the .proto but its
// go_package option, so that it stays the protocol KServe and Triton speak.
package oip
