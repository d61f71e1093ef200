"""The web UI, served by `tunesmith serve` under /ui: sign in with an API key, files, jobs with live curves, chat
with a tuned model beside its base, and the blind review of a job's answers.

Pages are server-rendered Jinja2 templates over the same store the API uses (every lookup through the signed-in
tenant); small plain scripts in static/ talk to the /v1 API for what happens in place: uploads, the live event
stream, the job states kept current, chat. The chart is uPlot, vendored in static/vendor (no CDN).
"""
