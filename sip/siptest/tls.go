package siptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"
)

// TestCert is a self-signed certificate made for one test run: it is its
// own CA, valid for 127.0.0.1, ::1 and localhost for a day.
type TestCert struct {
	CertPEM, KeyPEM []byte
	Pool            *x509.CertPool  // trusts the certificate
	Certificate     tls.Certificate // for a tls.Config
}

// NewTestCert generates a fresh ECDSA P-256 key and self-signed certificate.
func NewTestCert() (*TestCert, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("siptest: key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, fmt.Errorf("siptest: serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "parkswitch test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("siptest: certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("siptest: key: %w", err)
	}
	tc := &TestCert{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		Pool:    x509.NewCertPool(),
	}
	if tc.Certificate, err = tls.X509KeyPair(tc.CertPEM, tc.KeyPEM); err != nil {
		return nil, fmt.Errorf("siptest: key pair: %w", err)
	}
	if !tc.Pool.AppendCertsFromPEM(tc.CertPEM) {
		return nil, fmt.Errorf("siptest: pool: certificate not accepted")
	}
	return tc, nil
}

// ClientConfig trusts the certificate, for a phone dialing the switch.
func (tc *TestCert) ClientConfig() *tls.Config {
	return &tls.Config{RootCAs: tc.Pool, MinVersion: tls.VersionTLS12}
}

// ServerConfig serves the certificate and trusts it when dialing out.
func (tc *TestCert) ServerConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{tc.Certificate}, RootCAs: tc.Pool, MinVersion: tls.VersionTLS12}
}
