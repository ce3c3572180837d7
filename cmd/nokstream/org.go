package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/nokstream/nokstream/registry/store"
)

func orgCommand(_ *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "org",
		Short: "Manage organisations: councils, assessment centers and exam sites",
		Long: `Manage organisations: councils (СПК), assessment centers (ЦОК) and exam sites (ЭП).

'org add' creates an organisation, or updates the details given as flags of an
existing one (the others stay as they are), so a script may run it again.`,
	}
	add := &cobra.Command{Use: "add", Short: "Create an organisation or update its details"}
	add.AddCommand(orgAddCouncil(), orgAddCenter(), orgAddSite())
	cmd.AddCommand(add)
	return cmd
}

// setIfChanged sets *dst to v when flag name was given.
func setIfChanged[T any](fs *pflag.FlagSet, name string, dst *T, v T) {
	if fs.Changed(name) {
		*dst = v
	}
}

// auditCLI records a change made with the CLI in the audit log, as the
// operating-system user who ran it.
func auditCLI(ctx context.Context, st *store.Store, action, object string, detail map[string]any) error {
	who := "cli"
	if u, err := user.Current(); err == nil {
		who = "cli:" + u.Username
	}
	return st.Audit(ctx, store.AuditEntry{ActorLogin: who, Action: action, Object: object, RemoteAddr: "local", Detail: detail})
}

func reportSaved(kind, id string, created bool) {
	if created {
		fmt.Fprintf(os.Stderr, "%s %s created\n", kind, id)
	} else {
		fmt.Fprintf(os.Stderr, "%s %s exists; the details given were updated\n", kind, id)
	}
}

func orgAddCouncil() *cobra.Command {
	var d deps
	var name, address, email string
	var members, phones []string
	var appeal, provisional, unlinked int
	cmd := &cobra.Command{
		Use:   "council <id> --name NAME",
		Short: "Create a council (СПК) with its appeals commission, or update it",
		Long: `Create a council (СПК) with its appeals commission, or update it.

A result of an exam cannot be entered while the council's appeals commission
lacks members, a postal address, an e-mail or a phone. The retention flags set
the council's retention settings for all its qualifications (defaults: appeal
window 30 days, provisional period 90 days, footage of no exam 30 days).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, err := d.openStore(ctx, true)
			if err != nil {
				return err
			}
			defer st.Close()
			c, err := st.Council(ctx, args[0])
			if errors.Is(err, store.ErrNotFound) {
				c = store.Council{ID: args[0]}
			} else if err != nil {
				return err
			}
			fs := cmd.Flags()
			setIfChanged(fs, "name", &c.Name, name)
			setIfChanged(fs, "commission-member", &c.Commission.Members, members)
			setIfChanged(fs, "commission-address", &c.Commission.Address, address)
			setIfChanged(fs, "commission-email", &c.Commission.Email, email)
			setIfChanged(fs, "commission-phone", &c.Commission.Phones, phones)
			created, err := st.SaveCouncil(ctx, c)
			if err != nil {
				return err
			}
			if fs.Changed("appeal-window-days") || fs.Changed("provisional-days") || fs.Changed("unlinked-days") {
				all, err := st.CouncilRetentionSettings(ctx, c.ID)
				if err != nil {
					return err
				}
				rs := all[""]
				setIfChanged(fs, "appeal-window-days", &rs.AppealWindowDays, appeal)
				setIfChanged(fs, "provisional-days", &rs.ProvisionalDays, provisional)
				setIfChanged(fs, "unlinked-days", &rs.UnlinkedDays, unlinked)
				if err := st.SetRetentionSettings(ctx, c.ID, "", rs, 0); err != nil {
					return err
				}
			}
			if err := auditCLI(ctx, st, "council.save", c.ID, map[string]any{"created": created}); err != nil {
				return err
			}
			reportSaved("council", c.ID, created)
			if m := c.Commission.Missing(); len(m) > 0 {
				fmt.Fprintf(os.Stderr, "note: the appeals commission lacks %s; no result can be entered until it has them\n", strings.Join(m, ", "))
			}
			return nil
		},
	}
	d.dbFlag(cmd)
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "name of the council (required when creating)")
	f.StringSliceVar(&members, "commission-member", nil, "member of the appeals commission (repeat or comma-separate)")
	f.StringVar(&address, "commission-address", "", "postal address of the appeals commission")
	f.StringVar(&email, "commission-email", "", "e-mail of the appeals commission")
	f.StringSliceVar(&phones, "commission-phone", nil, "phone of the appeals commission (repeat for several)")
	f.IntVar(&appeal, "appeal-window-days", 30, "days after a conclusion during which an appeal may be filed")
	f.IntVar(&provisional, "provisional-days", 90, "days footage of an exam is kept while it has no result")
	f.IntVar(&unlinked, "unlinked-days", 30, "days footage that belongs to no exam is kept")
	return cmd
}

func orgAddCenter() *cobra.Command {
	var d deps
	var council, name, head, website, legal, actual, postal, email string
	var phones, quals []string
	cmd := &cobra.Command{
		Use:   "center <id> --council <id> --name NAME",
		Short: "Create an assessment center (ЦОК) of a council, or update it",
		Long: `Create an assessment center (ЦОК) of a council, or update it.

--qualification lists the qualifications (of the council) the center is
authorised for; given, it replaces the council's list (the authorisations of
a multi-industry center by other councils stay: each council gives and
withdraws its own through POST/DELETE /api/v1/centers/<id>/authorisations). A result of the center's exams
cannot be entered while the head, official site, legal address, e-mail or
phone is missing.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, err := d.openStore(ctx, true)
			if err != nil {
				return err
			}
			defer st.Close()
			c, err := st.Center(ctx, args[0])
			if errors.Is(err, store.ErrNotFound) {
				c = store.Center{ID: args[0]}
			} else if err != nil {
				return err
			}
			fs := cmd.Flags()
			if c.CouncilID == "" && council == "" {
				return errors.New("--council is required to create a center")
			}
			setIfChanged(fs, "council", &c.CouncilID, council)
			setIfChanged(fs, "name", &c.Name, name)
			setIfChanged(fs, "head", &c.Head, head)
			setIfChanged(fs, "website", &c.Website, website)
			setIfChanged(fs, "legal-address", &c.LegalAddress, legal)
			setIfChanged(fs, "actual-address", &c.ActualAddress, actual)
			setIfChanged(fs, "postal-address", &c.PostalAddress, postal)
			setIfChanged(fs, "email", &c.Email, email)
			setIfChanged(fs, "phone", &c.Phones, phones)
			if fs.Changed("qualification") {
				c.Qualifications = quals
			} else {
				c.Qualifications = nil
			}
			created, err := st.SaveCenter(ctx, c)
			if err != nil {
				return err
			}
			if err := auditCLI(ctx, st, "center.save", c.ID, map[string]any{"created": created}); err != nil {
				return err
			}
			reportSaved("center", c.ID, created)
			if m := c.MissingDetails(); len(m) > 0 {
				fmt.Fprintf(os.Stderr, "note: the center lacks its %s; no result can be entered until it has them\n", strings.Join(m, ", "))
			}
			return nil
		},
	}
	d.dbFlag(cmd)
	f := cmd.Flags()
	f.StringVar(&council, "council", "", "council that authorised the center (required when creating)")
	f.StringVar(&name, "name", "", "name of the center (required when creating)")
	f.StringVar(&head, "head", "", "full name of the head")
	f.StringVar(&website, "website", "", "official site")
	f.StringVar(&legal, "legal-address", "", "legal address")
	f.StringVar(&actual, "actual-address", "", "actual address (where the center works)")
	f.StringVar(&postal, "postal-address", "", "postal address")
	f.StringVar(&email, "email", "", "e-mail")
	f.StringSliceVar(&phones, "phone", nil, "phone (repeat for several)")
	f.StringSliceVar(&quals, "qualification", nil, "code of a qualification the center is authorised for (repeat or comma-separate)")
	return cmd
}

func orgAddSite() *cobra.Command {
	var d deps
	var center, name, address, email string
	var phones []string
	cmd := &cobra.Command{
		Use:   "site <id> --center <id>",
		Short: "Create an exam site (ЭП) of a center, or update it",
		Long: `Create an exam site (ЭП) of a center, or update it.

Devices are registered at an existing site: nokstream device add <site>/<device>.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, err := d.openStore(ctx, true)
			if err != nil {
				return err
			}
			defer st.Close()
			s, err := st.Site(ctx, args[0])
			if errors.Is(err, store.ErrNotFound) {
				s = store.Site{ID: args[0]}
			} else if err != nil {
				return err
			}
			fs := cmd.Flags()
			if s.CenterID == "" && center == "" {
				return errors.New("--center is required to create a site")
			}
			setIfChanged(fs, "center", &s.CenterID, center)
			setIfChanged(fs, "name", &s.Name, name)
			setIfChanged(fs, "address", &s.Address, address)
			setIfChanged(fs, "email", &s.Email, email)
			setIfChanged(fs, "phone", &s.Phones, phones)
			created, err := st.SaveSite(ctx, s)
			if err != nil {
				return err
			}
			if err := auditCLI(ctx, st, "site.save", s.ID, map[string]any{"created": created}); err != nil {
				return err
			}
			reportSaved("site", s.ID, created)
			return nil
		},
	}
	d.dbFlag(cmd)
	f := cmd.Flags()
	f.StringVar(&center, "center", "", "center the site belongs to (required when creating)")
	f.StringVar(&name, "name", "", "name of the site")
	f.StringVar(&address, "address", "", "address of the site")
	f.StringVar(&email, "email", "", "e-mail")
	f.StringSliceVar(&phones, "phone", nil, "phone (repeat for several)")
	return cmd
}

func qualificationCommand(_ *globalFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "qualification", Short: "Manage the qualifications of councils"}
	var d deps
	var council, name string
	var years int
	var tools []string
	add := &cobra.Command{
		Use:   "add <code> --council <id> --name NAME --validity-years N [--tool 'REFERENCE LINK']",
		Short: "Create a qualification with its certificate validity and assessment tools, or update it",
		Long: `Create a qualification with its certificate validity and assessment tools, or update it.

A certificate of the qualification is valid for --validity-years from its issue
date. --tool adds a set of assessment tools (оценочные средства): its reference,
a space, and the link where it is published. A result cannot be entered while
the qualification has no assessment tools.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, err := d.openStore(ctx, true)
			if err != nil {
				return err
			}
			defer st.Close()
			q, err := st.Qualification(ctx, args[0])
			if errors.Is(err, store.ErrNotFound) {
				q = store.Qualification{Code: args[0]}
			} else if err != nil {
				return err
			}
			fs := cmd.Flags()
			setIfChanged(fs, "council", &q.CouncilID, council)
			setIfChanged(fs, "name", &q.Name, name)
			setIfChanged(fs, "validity-years", &q.ValidityYears, years)
			q.Tools = nil
			for _, t := range tools {
				ref, link, _ := strings.Cut(strings.TrimSpace(t), " ")
				q.Tools = append(q.Tools, store.AssessmentTool{Reference: ref, Link: strings.TrimSpace(link)})
			}
			created, err := st.SaveQualification(ctx, q)
			if err != nil {
				return err
			}
			if err := auditCLI(ctx, st, "qualification.save", q.Code, map[string]any{"created": created}); err != nil {
				return err
			}
			reportSaved("qualification", q.Code, created)
			return nil
		},
	}
	d.dbFlag(add)
	f := add.Flags()
	f.StringVar(&council, "council", "", "council that keeps the qualification (required when creating)")
	f.StringVar(&name, "name", "", "name of the qualification (required when creating)")
	f.IntVar(&years, "validity-years", 0, "years a certificate is valid (required when creating)")
	f.StringArrayVar(&tools, "tool", nil, "assessment tools: 'REFERENCE LINK' (repeat for several)")
	cmd.AddCommand(add)
	return cmd
}
