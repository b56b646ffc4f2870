{#- One row per brand: views, carts, purchases, conversion and revenue, and whether (and why)
    the brand needs marketing. Rules, first match wins, against the median branded brand:
    no_sales (seen at least as much as the median, never bought), low_conversion (seen at
    least as much, converts at under half the shop rate), cart_drop (carted at least as much,
    carts turn into purchases at under half the shop rate), low_visibility (seen less than the
    bottom quartile, converts better than the shop). -#}
with daily as (

    select * from {{ ref('int_product_daily') }}
    where brand is not null

),

brands as (

    select
        brand,
        count(distinct product_id) as products,
        {{ summed(['views', 'carts', 'purchases', 'revenue_amount']) }}
    from daily
    group by brand

),

shop as (

    select
        {{ safe_divide('sum(purchases)', 'sum(views)') }} as conversion_rate,
        {{ safe_divide('sum(purchases)', 'sum(carts)') }} as cart_to_purchase_rate,
        median(views) as median_views,
        median(carts) as median_carts,
        percentile_cont(0.25) within group (order by views) as p25_views
    from brands

),

rated as (

    select
        brands.*,
        {{ safe_divide('brands.carts', 'brands.views') }} as view_to_cart_rate,
        {{ safe_divide('brands.purchases', 'brands.carts') }} as cart_to_purchase_rate,
        {{ safe_divide('brands.purchases', 'brands.views') }} as conversion_rate
    from brands

),

flagged as (

    select
        rated.*,
        case
            when rated.views >= shop.median_views and rated.purchases = 0
                then 'no_sales'
            when rated.views >= shop.median_views
                and rated.conversion_rate < 0.5 * shop.conversion_rate
                then 'low_conversion'
            when rated.carts >= shop.median_carts and rated.carts > 0
                and rated.cart_to_purchase_rate < 0.5 * shop.cart_to_purchase_rate
                then 'cart_drop'
            when rated.views < shop.p25_views and rated.conversion_rate > shop.conversion_rate
                then 'low_visibility'
        end as marketing_reason
    from rated
    cross join shop

),

final as (

    select
        brand,
        products,
        views,
        carts,
        purchases,
        revenue_amount,
        view_to_cart_rate,
        cart_to_purchase_rate,
        conversion_rate,
        marketing_reason is not null as needs_marketing,
        marketing_reason
    from flagged

)

select * from final
