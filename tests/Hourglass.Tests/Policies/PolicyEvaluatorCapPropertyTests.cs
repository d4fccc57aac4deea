using System.Globalization;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Hourglass.Policies;

namespace Hourglass.Tests.Policies;

public sealed class PolicyEvaluatorCapPropertyTests
{
    private static readonly Guid[] s_contacts =
    [
        new("00000000-0000-0000-0000-000000000001"),
        new("00000000-0000-0000-0000-000000000002"),
        new("00000000-0000-0000-0000-000000000003"),
    ];

    private static readonly string[] s_channels = ["email", "webhook", "task"];
    private static readonly DateTimeOffset s_start = new(2026, 3, 2, 0, 0, 0, TimeSpan.Zero);

    private sealed record Cap(string Scope, string? Channel, string Window, int Limit, string Decision)
    {
        public TimeSpan Length => Window switch { "hour" => TimeSpan.FromHours(1), "day" => TimeSpan.FromDays(1), _ => TimeSpan.FromDays(7) };

        // A channel cap judges only touches on its channel.
        public bool Judges(Touch touch) => Scope != "channel" || touch.Channel == Channel;

        // Whether `other` counts against this cap when it judges `touch`.
        public bool Covers(Touch touch, Touch other) => Scope switch
        {
            "channel" => other.Channel == Channel,
            "contact" => other.Contact == touch.Contact,
            _ => true,
        };

        public string Json(int index) =>
            $$"""{ "id": "cap-{{index}}", "kind": "cap", "scope": "{{Scope}}", {{(Channel is null ? "" : $"\"channel\": \"{Channel}\", ")}}"window": "{{Window}}", "limit": {{Limit.ToString(CultureInfo.InvariantCulture)}}, "decision": "{{Decision}}" }""";
    }

    private sealed record Touch(int Step, DateTimeOffset At, string Channel, Guid Contact);

    // Whatever the caps and the touches: evaluating each touch in turn and recording those permitted, no cap's
    // scope ever holds more than its limit of permitted touches in any rolling window (t - length, t]; and a touch
    // is refused exactly when some cap's window, as it stood, was already full (recomputed here from scratch).
    [Property(MaxTest = 500)]
    public Property Caps_NeverExceededInAnyRollingWindow()
    {
        var caps = from scope in Gen.Elements("tenant", "channel", "contact")
                   from channel in Gen.Elements(s_channels)
                   from window in Gen.Elements("hour", "day", "week")
                   from limit in Gen.Choose(0, 5)
                   from decision in Gen.Elements("deny", "require_approval")
                   select new Cap(scope, scope == "channel" ? channel : null, window, limit, decision);
        var steps = from contact in Gen.Choose(0, s_contacts.Length - 1)
                    from channel in Gen.Elements(s_channels)
                    // 0..3000 minutes, weighted to bursts (hour windows fill up) and whole window lengths (the edges).
                    from minutes in Gen.Frequency((3, Gen.Choose(0, 3000)), (2, Gen.Choose(0, 30)), (1, Gen.Elements(0, 60, 1440)))
                    select (contact, channel, minutes);
        var inputs = from capCount in Gen.Choose(1, 3)
                     from capList in caps.ArrayOf(capCount)
                     from length in Gen.Choose(1, 80)
                     from stepList in steps.ArrayOf(length)
                     select (capList, stepList);

        return Prop.ForAll(inputs.ToArbitrary(), input =>
        {
            var (capList, stepList) = input;
            var document = PolicyDocument.Parse($$"""
                { "schema": "hourglass.policy/v1", "actions": ["touch_task", "send_message"],
                  "rules": [{{string.Join(", ", capList.Select((c, i) => c.Json(i)))}}] }
                """);
            var history = new PolicyHistory();
            var permitted = new List<Touch>();
            var refused = new List<Touch>();
            var now = s_start;
            for (var i = 0; i < stepList.Length; i++)
            {
                var (contact, channel, minutes) = stepList[i];
                now = now.AddMinutes(minutes);
                var touch = new Touch(i, now, channel, s_contacts[contact]);
                var action = new PolicyAction(channel == "task" ? "touch_task" : "send_message", touch.Contact, channel, touch.Contact);
                var decision = PolicyEvaluator.Evaluate(document, "v", action, TargetFacts.None(TimeZoneInfo.Utc), history, now, TimeZoneInfo.Utc);
                if (decision.Permits)
                {
                    history.RecordPermitted(action, now);
                    permitted.Add(touch);
                }
                else
                {
                    refused.Add(touch);
                }
            }

            // How many permitted touches before step `before` fall in the cap's scope for `touch`, in (t - length, t].
            int InWindow(Cap cap, Touch touch, int before) =>
                permitted.Count(p => p.Step < before && cap.Covers(touch, p) && p.At > touch.At - cap.Length && p.At <= touch.At);

            // The count in a window only rises at a touch, so the windows ending at each permitted touch are the fullest.
            var overLimit = capList
                .SelectMany(cap => permitted.Where(p => cap.Judges(p) && InWindow(cap, p, int.MaxValue) > cap.Limit).Select(p => $"{cap} at step {p.Step}"))
                .ToList();
            bool Full(Touch touch) => capList.Any(cap => cap.Judges(touch) && InWindow(cap, touch, touch.Step) + 1 > cap.Limit);
            var wronglyRefused = refused.Where(r => !Full(r)).Select(r => r.Step).ToList();
            var wronglyPermitted = permitted.Where(Full).Select(p => p.Step).ToList();

            return (overLimit.Count == 0).Label($"over a limit: {string.Join("; ", overLimit)}")
                .And((wronglyRefused.Count == 0).Label($"refused with every cap's window open: steps {string.Join(", ", wronglyRefused)}"))
                .And((wronglyPermitted.Count == 0).Label($"permitted into a full window: steps {string.Join(", ", wronglyPermitted)}"))
                .Classify(refused.Count > 0, "some refused")
                .Classify(permitted.Count > 0, "some permitted");
        });
    }
}
