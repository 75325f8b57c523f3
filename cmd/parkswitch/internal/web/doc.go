// Package web is the switch's pages for people: the park board at / and
// the call park policy pages at /admin, served on http_listen beside the
// admin API.
//
// The pages are rendered on the server with html/template from files
// embedded in the binary (templates/, static/), so they need no build
// step. The one script, static/board.js, keeps the board live: it listens
// to the event stream (/board/events) and fetches the board again
// (/board/rows) when an orbit changes, and counts the times down between.
// Every page works without it, a reload away from current.
//
// People sign in with a name and password of http.users (Accounts); a
// session is a random ID in an HttpOnly, SameSite=Lax cookie, held in a
// bounded table in memory (session.go). Every form carries the session's
// synchronizer token and every POST must come from the pages' own origin
// (guard.go). Viewers see the board and the policies; admins also edit
// policies and use "Retrieve to…". With no credentials configured at all,
// which the configuration allows on a loopback http_listen only, the pages
// are open as the admin API is, and every visitor is an admin.
package web
