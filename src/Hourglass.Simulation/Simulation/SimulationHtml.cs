using System.Globalization;
using System.Net;
using System.Text;

namespace Hourglass.Simulation;

/// <summary>
/// The report as one self-contained HTML page: inline SVG charts (no script, no external file), the goals first,
/// then compliance over time, touches per day against the caps, orders, strategies against the world's truth, cycles.
/// </summary>
internal static class SimulationHtml
{
    private const int Width = 900;
    private const int Height = 220;
    private const int Left = 50;
    private const int Bottom = 24;

    private const string Style = """
            <style>
            body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:960px;color:#1d2433}
            h1{font-size:1.5rem} h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #dde}
            table{border-collapse:collapse;margin:.5rem 0} td,th{padding:.25rem .6rem;border-bottom:1px solid #eee;text-align:left}
            td.n,th.n{text-align:right;font-variant-numeric:tabular-nums} .met{color:#176b2c;font-weight:600} .missed{color:#b3261e;font-weight:600}
            svg{background:#fafbfd;border:1px solid #e4e7ee} .legend span{margin-right:1rem} .sw{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:middle}
            </style></head><body>
            """;

    public static string Render(SimulationReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        var s = report.Settings;
        var html = new StringBuilder();
        var ranIn = report.Timing is { } timing ? string.Create(CultureInfo.InvariantCulture, $" Ran in {timing.TotalSeconds:N0} s.") : "";
        html.Append(CultureInfo.InvariantCulture, $$"""
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>Hourglass simulation, seed {{s.Seed}}</title>
            {{Style}}
            <h1>Hourglass simulation</h1>
            <p>Seed {{s.Seed}}: {{s.Tenants}} tenants × {{s.ContactsPerTenant:N0}} contacts ({{s.ContactsPerAccount}} per account), {{s.Days}} days from
            {{s.Start:yyyy-MM-dd}}; email cap {{s.EmailDailyCap}}/24 h, {{s.ContactWeeklyCap}} touches per contact per 7 days; every
            {{(s.ApprovalEveryNthTenant == 0 ? "—" : Ordinal(s.ApprovalEveryNthTenant))}} tenant approves every message;
            orders {{s.FixableShare:P0}} fixable, {{s.UnfixableShare:P0}} unfixable.{{ranIn}}</p>
            <h2>Goals</h2>
            <table><tr><th>Goal</th><th>Target</th><th>Reached</th><th></th></tr>
            """);
        foreach (var goal in report.Goals)
        {
            html.Append(CultureInfo.InvariantCulture,
                $"<tr><td>{E(goal.Description)}</td><td>{E(goal.Target)}</td><td>{E(goal.Reached)}</td><td class=\"{(goal.Met ? "met" : "missed")}\">{(goal.Met ? "met" : "missed")}</td></tr>\n");
        }

        html.Append("</table>\n");

        var c = report.Compliance;
        html.Append(CultureInfo.InvariantCulture, $"""
            <h2>Compliance over time</h2>
            <p>Share of all engagement clocks past due at the top of each hour, before the agent acts. It starts at {c.StartShare:P1}
            (the backlog the world starts with); from day {c.FromDay} the worst hour is {c.WorstShare:P2} ({c.WorstTenantShare:P2} in the worst tenant),
            {c.HoursOverGoal} hours above 1%.</p>
            """);
        html.Append(LineChart(
            [("all tenants", "#2f6fde", c.Hourly.Select(h => h.OverdueShare * 100).ToList()), ("worst tenant", "#e0823d", c.Hourly.Select(h => h.WorstTenantShare * 100).ToList())],
            "% overdue", 1.0, c.FromDay * 24, 24));

        var caps = report.Caps;
        html.Append(CultureInfo.InvariantCulture, $"""
            <h2>Touches per day</h2>
            <p>The agent's messages (delivered), the calls its touch cards asked for (made), people's own touches and the replies, per day, all tenants.
            Caps, from the ledger over every rolling window: at most <b>{caps.EmailPeak24h}</b> messages in 24 hours in one tenant (cap {caps.EmailDailyCap};
            {caps.SentPeak24h} by delivery time), at most <b>{caps.ContactPeak7d}</b> touches of one contact in 7 days (cap {caps.ContactWeeklyCap});
            {caps.SentOutsideWindow} messages delivered outside 08:00–18:00 on weekdays in the contact's zone.</p>
            """);
        html.Append(LineChart(
            [
                ("messages", "#2f6fde", report.Days.Select(d => (double)d.Messages).ToList()),
                ("calls", "#7a4fd6", report.Days.Select(d => (double)d.Calls).ToList()),
                ("own touches", "#8a8f99", report.Days.Select(d => (double)d.ManualTouches).ToList()),
                ("replies", "#1e9e63", report.Days.Select(d => (double)d.Replies).ToList()),
            ], "per day", null, null, 1));

        var o = report.Orders;
        html.Append(CultureInfo.InvariantCulture, $"""
            <h2>Orders</h2>
            <p>Clean orders released: {o.CleanReleased:N0} of {o.Clean:N0}. Fixable orders resolved automatically: <b>{o.FixableAutoResolved:N0} of {o.Fixable:N0}</b>
            ({Share(o.FixableAutoResolved, o.Fixable)}), exceptions {o.FixableExceptions:N0}. Unfixable orders released: <b>{o.UnfixableReleased:N0}</b> of {o.Unfixable:N0};
            exceptions {o.UnfixableExceptions:N0}. Not yet processed when the run ended: {o.Unprocessed:N0}.</p>
            <table><tr><th>Defect</th><th class="n">Placed</th><th class="n">Released</th><th class="n">Auto-fixed</th><th class="n">Exceptions</th><th class="n">Other</th></tr>
            """);
        foreach (var row in o.ByDefect)
        {
            html.Append(CultureInfo.InvariantCulture,
                $"<tr><td>{E(row.Defect)}</td><td class=\"n\">{row.Placed:N0}</td><td class=\"n\">{row.Released:N0}</td><td class=\"n\">{row.Fixed:N0}</td><td class=\"n\">{row.Exceptions:N0}</td><td class=\"n\">{row.Other:N0}</td></tr>\n");
        }

        html.Append("</table>\n");

        var st = report.Strategies;
        html.Append(CultureInfo.InvariantCulture, $"""
            <h2>Strategies against the world's true rates</h2>
            <p>From day {st.FromDay}, the strategies the agent chose had a true success chance (a reply, or an order within 7 days) of
            <b>{st.ChosenToBestRatio:P1}</b> of the best strategy's, over {st.Touches:N0} touches; {st.RealizedSuccessRate:P1} of them succeeded.
            The agent's estimate is its posterior mean over the whole run.</p>
            <table><tr><th>Tenant</th><th>Strategy</th><th class="n">True rate</th><th class="n">Agent's estimate</th><th class="n">Chosen (from day {st.FromDay})</th><th class="n">Chosen (all)</th></tr>
            """);
        foreach (var tenant in st.Tenants)
        {
            var late = tenant.Strategies.Sum(r => r.ChosenLate);
            foreach (var row in tenant.Strategies)
            {
                html.Append(CultureInfo.InvariantCulture,
                    $"<tr><td>{E(tenant.Tenant)}</td><td>{(row.Key == tenant.Best ? "<b>" + E(row.Key) + "</b>" : E(row.Key))}</td><td class=\"n\">{row.TrueRate:P1}</td><td class=\"n\">{row.AgentEstimate:P1}</td>" +
                    $"<td class=\"n\">{Share(row.ChosenLate, late)}</td><td class=\"n\">{row.ChosenAll:N0}</td></tr>\n");
            }
        }

        html.Append("</table>\n<h2>Cycles</h2>\n<table><tr><th>Run status</th><th class=\"n\">Runs</th></tr>\n");
        foreach (var (status, count) in report.Cycles.Runs)
        {
            html.Append(CultureInfo.InvariantCulture, $"<tr><td>{E(status)}</td><td class=\"n\">{count:N0}</td></tr>\n");
        }

        html.Append(CultureInfo.InvariantCulture,
            $"</table>\n<p>Approvals granted {report.Cycles.ApprovalsGranted:N0}, rejected {report.Cycles.ApprovalsRejected:N0}. Refused decisions (the card no longer open): " +
            $"{(report.Cycles.RefusedDecisions.Count == 0 ? "none" : E(string.Join(", ", report.Cycles.RefusedDecisions.Select(p => $"{p.Value:N0} {p.Key}"))))}.</p>\n");
        var inbound = report.Inbound;
        html.Append("<h2>The world answers</h2>\n<table><tr><th>Event (through the inbound recorder)</th><th>What it did</th><th class=\"n\">Count</th></tr>\n");
        foreach (var (what, count) in inbound.Outcomes)
        {
            var cut = what.IndexOf(": ", StringComparison.Ordinal);
            html.Append(CultureInfo.InvariantCulture, $"<tr><td>{E(what[..cut])}</td><td>{E(what[(cut + 2)..])}</td><td class=\"n\">{count:N0}</td></tr>\n");
        }

        html.Append(CultureInfo.InvariantCulture,
            $"</table>\n<p>Emails sent after their address was suppressed or their contact opted out: {inbound.SentAfterSuppression:N0} (the world's own count of messages " +
            $"reaching a contact after a hard bounce, complaint or unsubscribe: {inbound.SentAfterWorldAnswer:N0}). Replies that had moved their contact's clock by the end " +
            $"of the hour they arrived: {inbound.RepliesMovedClock:N0} of {inbound.RepliesChecked:N0}.</p>\n");
        if (report.Timing is { } t)
        {
            html.Append(CultureInfo.InvariantCulture, $"<h2>Speed</h2>\n<p>{t.TotalSeconds:N0} s in all, {t.SeedSeconds:N0} s of it seeding; {t.CyclesPerSecond:N1} cycles/s.</p>\n");
            html.Append("<table><tr><th>Stage of the hour loop</th><th class=\"n\">Seconds</th></tr>\n");
            foreach (var (stage, seconds) in t.StageSeconds)
            {
                html.Append(CultureInfo.InvariantCulture, $"<tr><td>{E(stage)}</td><td class=\"n\">{seconds:N1}</td></tr>\n");
            }

            html.Append("</table>\n<table><tr><th>Cycle phase</th><th class=\"n\">Mean ms</th></tr>\n");
            foreach (var (phase, ms) in t.CyclePhaseMs)
            {
                html.Append(CultureInfo.InvariantCulture, $"<tr><td>{E(phase)}</td><td class=\"n\">{ms:N1}</td></tr>\n");
            }

            html.Append("</table>\n");
        }

        html.Append("</body></html>\n");
        return html.ToString();
    }

    /// <summary>An SVG line chart of points <paramref name="perDay"/> to a day; an optional horizontal goal line and a vertical marker (x index).</summary>
    private static string LineChart(IReadOnlyList<(string Name, string Color, List<double> Values)> series, string unit, double? goal, int? marker,
        int perDay)
    {
        var count = series.Max(x => x.Values.Count);
        var max = Math.Max(goal ?? 0, series.SelectMany(x => x.Values).DefaultIfEmpty(0).Max());
        max = max <= 0 ? 1 : max * 1.1;
        double X(int i) => Left + (count <= 1 ? 0 : (double)i / (count - 1) * (Width - Left - 10));
        double Y(double v) => 10 + (1 - v / max) * (Height - Bottom - 10);
        var svg = new StringBuilder();
        svg.Append(CultureInfo.InvariantCulture, $"<svg viewBox=\"0 0 {Width} {Height}\" width=\"{Width}\" height=\"{Height}\" role=\"img\" aria-label=\"{E(unit)}\">\n");
        for (var k = 0; k <= 4; k++)
        {
            var v = max * k / 4;
            svg.Append(CultureInfo.InvariantCulture,
                $"<line x1=\"{Left}\" x2=\"{Width - 10}\" y1=\"{Y(v):0.#}\" y2=\"{Y(v):0.#}\" stroke=\"#e4e7ee\"/><text x=\"{Left - 6}\" y=\"{Y(v) + 4:0.#}\" font-size=\"10\" text-anchor=\"end\">{v:0.##}</text>\n");
        }

        // Ticks label days: every n-th day so that about 15 labels fit.
        var days = Math.Max(1, count / perDay);
        var step = perDay * Math.Max(1, (int)Math.Ceiling(days / 15.0));
        for (var i = 0; i < count; i += step)
        {
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{X(i):0.#}\" y=\"{Height - 6}\" font-size=\"10\" text-anchor=\"middle\">day {i / perDay}</text>\n");
        }

        if (goal is { } g)
        {
            svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{Left}\" x2=\"{Width - 10}\" y1=\"{Y(g):0.#}\" y2=\"{Y(g):0.#}\" stroke=\"#b3261e\" stroke-dasharray=\"5 4\"/>\n");
        }

        if (marker is { } m && m < count)
        {
            svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{X(m):0.#}\" x2=\"{X(m):0.#}\" y1=\"10\" y2=\"{Height - Bottom}\" stroke=\"#8a8f99\" stroke-dasharray=\"2 3\"/>\n");
        }

        foreach (var (_, color, values) in series)
        {
            svg.Append(CultureInfo.InvariantCulture, $"<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.4\" points=\"");
            for (var i = 0; i < values.Count; i++)
            {
                svg.Append(CultureInfo.InvariantCulture, $"{X(i):0.#},{Y(values[i]):0.#} ");
            }

            svg.Append("\"/>\n");
        }

        svg.Append("</svg>\n<p class=\"legend\">");
        foreach (var (name, color, _) in series)
        {
            svg.Append(CultureInfo.InvariantCulture, $"<span><i class=\"sw\" style=\"background:{color}\"></i>{E(name)}</span>");
        }

        if (goal is not null)
        {
            svg.Append("<span><i class=\"sw\" style=\"background:#b3261e\"></i>goal</span>");
        }

        svg.Append(CultureInfo.InvariantCulture, $"<span>({E(unit)})</span></p>\n");
        return svg.ToString();
    }

    private static string Share(long part, long whole) => whole == 0 ? "—" : ((double)part / whole).ToString("P1", CultureInfo.InvariantCulture);

    private static string Ordinal(int n) => n switch { 1 => "", 2 => "2nd", 3 => "3rd", _ => $"{n}th" };

    private static string E(string text) => WebUtility.HtmlEncode(text);
}
