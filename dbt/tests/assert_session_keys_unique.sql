-- int_sessions groups by a 64-bit hash of user_session: no two session ids may share one.
select {{ hash64('user_session') }} as session_key, count(distinct user_session) as session_ids
from {{ ref('int_events') }}
where user_session is not null
group by 1
having count(distinct user_session) > 1
