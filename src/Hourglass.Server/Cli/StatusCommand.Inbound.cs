using System.Globalization;
using Spectre.Console;

namespace Hourglass.Server.Cli;

internal static partial class StatusCommand
{
    // What the world answered about the tenant's messages, per day in its time zone (docs/inbound.md, "Seeing it").
    private static void PrintInbound(IAnsiConsole console, StatusSnapshot snapshot, TenantState tenant)
    {
        if (!snapshot.Inbound.TryGetValue(tenant.Id, out var days))
        {
            return;
        }

        console.WriteLine();
        console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Answers from the world, last {InboundDays} days (docs/inbound.md)"));
        if (days.Count == 0)
        {
            console.WriteLine("No delivery events, bounces, complaints, unsubscribes or replies recorded.");
            return;
        }

        var table = NewTable("day", ">delivered", ">hard bounces", ">soft bounces", ">complaints", ">unsubscribes", ">replies", ">out of office",
            ">skipped");
        foreach (var day in days)
        {
            AddRow(table, day.Day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture), N(day.Delivered), N(day.BouncesHard), N(day.BouncesSoft),
                N(day.Complaints), N(day.Unsubscribes), N(day.Replies), N(day.OutOfOffice), N(day.Skipped));
        }

        console.Write(table);
    }
}
