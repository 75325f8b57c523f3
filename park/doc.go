// Package park keeps the parked calls of the switch: one orbit table per call
// park policy, the allocation of pickup codes, and the life of an orbit from
// park through ringback to retrieve, answer, abandon or hang-up, with the
// semantics of Microsoft Teams call park policies.
//
// The package imports only the policy and store packages of the project
// (store is a leaf seam like policy: interfaces and records, no NATS). It
// reaches SIP through the Ringer and Call interfaces it defines, and reads
// time through a Clock so that tests can drive timeouts without waiting.
// A lot given a store with Share claims its codes there, so that the nodes
// of a cluster share one table, and writes every change of an orbit there
// for a restarted node or another one to take the orbit over (Adopt).
package park
